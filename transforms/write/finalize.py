"""stats.json, manifest.json and COMPLETED: the end of every pipeline.

:func:`build_stats` turns the pipeline's ``((kind, reason), n)`` tallies into
the stats.json of DESIGN.md and checks the accounting identity::

    records_in == records_out + sum(filtered) + sum(duplicates) + sum(dead_letter)

:class:`Finalize` runs once, after every shard and the dead letter are
written (they are its side inputs): it completes empty shards, writes
stats.json and manifest.json, fails the run loudly when the identity breaks
or the dead-letter share exceeds the configured threshold, and writes
``COMPLETED`` last.
"""

from __future__ import annotations

import collections
import hashlib
import json
from typing import Any, Callable, Dict, Iterable, Optional, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import accounting
from transforms.write import tfds_meta
from transforms.write import shards as writers
from transforms.accounting import DEAD_LETTER, DUPLICATES, FILTERED, IN, INFO, OUT

__all__ = ["build_stats", "identity_holds", "Finalize", "TooManyBrokenRecords",
           "AccountingError", "EmptyOutputError", "sum_counts", "config_digest"]

IDENTITY = ("records_in == records_out + sum(filtered.values()) + sum(duplicates.values())"
            " + sum(dead_letter.values())")


class TooManyBrokenRecords(RuntimeError):
    """The share of dead-lettered records exceeded ``max_dead_letter_fraction``."""


class AccountingError(RuntimeError):
    """Records were lost or counted twice: a bug, never expected."""


class EmptyOutputError(RuntimeError):
    """The run wrote no record: a dataset the trainer would fail on (``--allow_empty`` accepts it)."""


MAX_SOURCES = 1000  # stats.json names this many sources, the rest are summed under OTHER_SOURCES
OTHER_SOURCES = "(other sources)"
# Every file name a run writes besides shards, dead letter and extras (manifest "files").
FIXED_FILES = ("COMPLETED", "stats.json", "manifest.json", "report.html", "dataset_info.json",
               "features.json", ".beamtrain.json")


def sum_counts(pairs: Iterable[Tuple[Tuple[str, str], int]]) -> Dict[Tuple[str, str], int]:
    total: Dict[Tuple[str, str], int] = collections.Counter()
    for key, n in pairs:
        total[tuple(key)] += n
    return dict(total)


def _histogram(counts: Dict[Tuple[str, str], int], kind: str) -> Optional[dict]:
    buckets = sorted((int(reason), n) for (k, reason), n in counts.items() if k == kind)
    if not buckets:
        return None
    return {"bucket_lower_bounds": [b for b, _ in buckets], "counts": [n for _, n in buckets]}


def build_stats(counts: Dict[Tuple[str, str], int]) -> Dict[str, Any]:
    by_kind: Dict[str, Dict[str, int]] = collections.defaultdict(dict)
    for (kind, reason), n in counts.items():
        by_kind[kind][reason] = by_kind[kind].get(reason, 0) + n
    records_in = sum(by_kind[IN].values())
    out_by_split = dict(sorted(by_kind[OUT].items()))
    duplicates = {"exact": 0, "near": 0}
    duplicates.update(by_kind[DUPLICATES])
    stats: Dict[str, Any] = {
        "records_in": records_in,
        "records_out": sum(out_by_split.values()),
        "records_out_by_split": out_by_split,
        "filtered": dict(sorted(by_kind[FILTERED].items())),
        "duplicates": dict(sorted(duplicates.items())),
        "dead_letter": dict(sorted(by_kind[DEAD_LETTER].items())),
        "lines_removed": dict(sorted(by_kind["lines_removed"].items())),
        "pii": dict(sorted(by_kind["pii"].items())),
        "license": dict(sorted(by_kind["license"].items())),
        "info": dict(sorted(by_kind[INFO].items())),
        "histograms": {},
    }
    seconds = by_kind.get(accounting.TIME_SECONDS, {})
    if seconds:
        total = sum(seconds.values()) or 1.0
        calls = by_kind.get(accounting.TIME_CALLS, {})
        # worker time per stage, summed over workers: which stage costs what share
        stats["timing"] = {stage: {"seconds": round(sec, 3), "calls": int(calls.get(stage, 0)),
                                   "share": round(sec / total, 4)}
                           for stage, sec in sorted(seconds.items())}
    rounds = sorted((k, n) for k, n in by_kind[INFO].items() if k.startswith("near_dedup.round_"))
    if rounds:
        stats["near_dedup"] = {
            "rounds": len(rounds),
            "changes_per_round": [n for _, n in rounds],
            # the last round changed nothing: every component is a star around its minimum
            "converged": rounds[-1][1] == 0,
            "candidate_pairs_from_buckets": by_kind[INFO].get("near_dedup.bucket_pairs", 0),
            "pairs_compared": by_kind[INFO].get("near_dedup.pairs_compared", 0),
            "pairs_accepted": by_kind[INFO].get("near_dedup.pairs_accepted", 0),
            "documents_without_shingles": by_kind[INFO].get("near_dedup.no_shingles", 0),
        }
        for key, _ in rounds:
            stats["info"].pop(key, None)
    sources = by_kind.get(writers.SOURCE_RECORDS, {})
    if sources:
        tokens = by_kind.get(writers.SOURCE_TOKENS, {})
        ranked = sorted(sources, key=lambda name: (-sources[name], name))
        table = {name: {"records": sources[name], "tokens": tokens.get(name, 0)}
                 for name in sorted(ranked[:MAX_SOURCES])}
        rest = ranked[MAX_SOURCES:]
        if rest:
            table[OTHER_SOURCES] = {"records": sum(sources[n] for n in rest),
                                    "tokens": sum(tokens.get(n, 0) for n in rest),
                                    "sources": len(rest)}
        stats["sources"] = table
    for kind in sorted({k for k, _ in counts if k.startswith("hist.")}):
        hist = _histogram(counts, kind)
        if hist is not None:
            stats["histograms"][kind[len("hist."):]] = hist
    stats["accounting"] = {"identity": IDENTITY, "holds": identity_holds(stats)}
    return stats


def identity_holds(stats: Dict[str, Any]) -> bool:
    return stats["records_in"] == (
        stats["records_out"]
        + sum(stats["filtered"].values())
        + sum(stats["duplicates"].values())
        + sum(stats["dead_letter"].values())
    )


def _sha256_of(path: str) -> str:
    digest = hashlib.sha256()
    with FileSystems.open(path) as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def config_digest(config: Dict[str, Any]) -> str:
    """sha256 of the configuration as manifest.json stores it (verify recomputes it)."""
    return hashlib.sha256(writers.json_dumps(config)).hexdigest()


def _relative(path: str, output_dir: str) -> str:
    prefix = output_dir.rstrip("/") + "/"
    return path[len(prefix):] if path.startswith(prefix) else path


class _FinalizeDoFn(beam.DoFn):
    def __init__(self, output_dir: str, config: Dict[str, Any], code_version: Dict[str, Any],
                 max_dead_letter_fraction: float, dataset_version: Optional[str],
                 on_success: Optional[Callable[[str], None]] = None):
        self._output_dir = output_dir
        self._on_success = on_success
        self._validation = bool(config.get("writer", {}).get("validation_fraction", 0))
        self._config = config
        self._code_version = code_version
        self._max_dead = max_dead_letter_fraction
        self._dataset_version = dataset_version

    def process(self, _, counts, shards, files, dead_files, tokenizer, *extras):
        counts = sum_counts(counts)
        stats = build_stats(counts)
        splits = [writers.TRAIN] + ([writers.VALIDATION] if self._validation else [])
        shards = list(shards) + writers.write_empty_shards(self._output_dir, list(shards), splits)
        shards.sort(key=lambda s: (s["split"], s["index"]))
        stats["splits"] = {}
        for s in shards:
            split = stats["splits"].setdefault(s["split"], {"records": 0, "shards": s["num_shards"]})
            split["records"] += s["records"]
        for split, info in stats["splits"].items():
            info["tokens"] = stats["info"].get(f"tokens.{split}", 0)
        out = self._output_dir
        with FileSystems.create(FileSystems.join(out, "stats.json")) as f:
            f.write(writers.json_dumps(stats))

        shard_entries = [
            {"path": _relative(s["path"], out), "split": s["split"], "records": s["records"],
             "bytes": s["bytes"], "sha256": s["sha256"]}
            for s in shards
        ]
        written = [s["path"] for s in shard_entries] + [_relative(p, out) for p in dead_files]
        for extra in extras:
            written += [_relative(p, out) for p in extra if isinstance(p, str)]
        tokenizer_entry = None
        if tokenizer:
            written += ["tokenizer/spm.model", "tokenizer/spm.vocab"]
            model_path = FileSystems.join(out, "tokenizer", "spm.model")
            tokenizer_entry = {"path": "tokenizer/spm.model", "sha256": _sha256_of(model_path)}
        content = hashlib.sha256()
        for s in shard_entries:
            content.update(f"{s['path']}:{s['sha256']}\n".encode())
        if tokenizer_entry:
            content.update(tokenizer_entry["sha256"].encode())
        manifest = {
            "dataset_version": self._dataset_version or content.hexdigest()[:16],
            "content_sha256": content.hexdigest(),
            "code_version": self._code_version,
            "config": self._config,
            "inputs": sorted(
                ({"path": f["path"], "size": f["size"], "mtime": f["mtime"]} for f in files),
                key=lambda f: f["path"]),
            "shards": shard_entries,
            "tokenizer": tokenizer_entry,
            "dead_letter": sorted(_relative(p, out) for p in dead_files),
            "records_out": stats["records_out"],
            "config_sha256": config_digest(self._config),
            # every file this run wrote: the only files a later run here may delete
            "files": sorted(set(written) | set(FIXED_FILES)),
        }
        with FileSystems.create(FileSystems.join(out, "manifest.json")) as f:
            f.write(writers.json_dumps(manifest))
        # dataset_info.json + features.json for tfds.builder_from_directory(out);
        # raises TfdsMetadataError (naming the cause) rather than skipping them
        tfds_files = {_relative(p, out) for p in tfds_meta.write_tfds_metadata(out, manifest)}
        if not tfds_files <= set(manifest["files"]):  # label files named after their feature
            manifest["files"] = sorted(set(manifest["files"]) | tfds_files)
            with FileSystems.create(FileSystems.join(out, "manifest.json")) as f:
                f.write(writers.json_dumps(manifest))

        if not stats["accounting"]["holds"]:
            raise AccountingError(
                f"accounting identity broken: {json.dumps({k: stats[k] for k in ('records_in', 'records_out', 'filtered', 'duplicates', 'dead_letter')})}")
        dead = sum(stats["dead_letter"].values())
        if stats["records_in"] and dead / stats["records_in"] > self._max_dead:
            raise TooManyBrokenRecords(
                f"{dead} of {stats['records_in']} input records are broken "
                f"({dead / stats['records_in']:.1%} > max_dead_letter_fraction="
                f"{self._max_dead:.1%}); see {FileSystems.join(out, 'dead_letter')}")
        if stats["records_out"] == 0 and not self._config.get("allow_empty", False):
            where = ", ".join(f"{k} {sum(stats[k].values())}" for k in
                              ("filtered", "duplicates", "dead_letter"))
            raise EmptyOutputError(
                f"no record was written (records in {stats['records_in']}: {where}); see "
                f"{FileSystems.join(out, 'stats.json')}, or pass --allow_empty to accept it")
        if self._on_success is not None:
            self._on_success(out)
        with FileSystems.create(FileSystems.join(out, "COMPLETED")) as f:
            f.write(json.dumps({"dataset_version": manifest["dataset_version"],
                                "content_sha256": manifest["content_sha256"],
                                "config_sha256": manifest["config_sha256"]}).encode() + b"\n")
        yield stats


class Finalize(beam.PTransform):
    """Writes stats.json, manifest.json and COMPLETED once everything else is written."""

    def __init__(self, output_dir: str, counts, shards, files, dead_files, tokenizer,
                 config: Dict[str, Any], code_version: Dict[str, Any],
                 max_dead_letter_fraction: float = 0.1, dataset_version: Optional[str] = None,
                 extras: Tuple = (), on_success: Optional[Callable[[str], None]] = None):
        super().__init__()
        self._on_success = on_success  # e.g. draw report.html, before COMPLETED
        self._output_dir = output_dir
        self._inputs = (counts, shards, files, dead_files, tokenizer)
        self._extras = tuple(extras)  # more writes that must finish before COMPLETED
        self._config = config
        self._code_version = code_version
        self._max_dead = max_dead_letter_fraction
        self._dataset_version = dataset_version

    def expand(self, pbegin):
        counts, shards, files, dead_files, tokenizer = self._inputs
        AsList = beam.pvalue.AsList
        return (
            pbegin
            | "Once" >> beam.Create([None])
            | "WriteStatsManifestCompleted" >> beam.ParDo(
                _FinalizeDoFn(self._output_dir, self._config, self._code_version,
                              self._max_dead, self._dataset_version, self._on_success),
                AsList(counts), AsList(shards), AsList(files), AsList(dead_files),
                AsList(tokenizer), *[AsList(e) for e in self._extras])
        )
