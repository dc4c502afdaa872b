"""The end of every pipeline: shards, dead letter, samples, stats.json, manifest.json, COMPLETED.

:func:`write_dataset` is that end, written once for every pipeline: encode the
records, write the shards (:class:`~transforms.write.shards.WriteShards`), the
dead letter and the samples (:mod:`transforms.write.sidecars`), then
:class:`Finalize`. It is a function rather than a composite so that its steps
keep their top-level labels (``EncodeExamples``, ``WriteShards``, ``Finalize``)
in a runner's UI.

:func:`build_stats` turns the pipeline's ``((kind, reason), n)`` tallies into
the stats.json of DESIGN.md and checks the accounting identity::

    records_in == records_out + sum(filtered) + sum(duplicates) + sum(dead_letter)

:class:`Finalize` runs once, after every shard and the dead letter are
written (they are its side inputs), in named steps: it completes empty shards,
writes stats.json, manifest.json and the TFDS metadata, fails the run loudly
when the identity breaks, the dead-letter share exceeds the configured
threshold or nothing was written, and writes ``COMPLETED`` last.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
from typing import Any, Callable, Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import accounting
from transforms.write import formats, tfds_meta
from transforms.write import shards as writers
from transforms.write.sidecars import WriteDeadLetter, WriteSamples
from transforms.accounting import DEAD_LETTER, DUPLICATES, FILTERED, IN, INFO, OUT

__all__ = ["OutputSpec", "Parts", "Written", "write_dataset", "build_stats", "identity_holds",
           "Finalize", "TooManyBrokenRecords", "AccountingError", "EmptyOutputError", "sum_counts",
           "config_digest"]

IDENTITY = ("records_in == records_out + sum(filtered.values()) + sum(duplicates.values())"
            " + sum(dead_letter.values())")


class TooManyBrokenRecords(RuntimeError):
    """The share of dead-lettered records exceeded ``max_dead_letter_fraction``."""


class AccountingError(RuntimeError):
    """Records were lost or counted twice: a bug, never expected."""


class EmptyOutputError(RuntimeError):
    """The run wrote no record: a dataset the trainer would fail on (``--allow_empty`` accepts it)."""


@dataclasses.dataclass(frozen=True)
class OutputSpec:
    """Where a run writes, the checks that end it, and what its manifest records."""

    output_dir: str
    writer: writers.WriterConfig = writers.WriterConfig()
    max_dead_letter_fraction: float = 0.1
    allow_empty: bool = False  # complete a run that writes no record
    dead_letter_raw: bool = False  # write dead-letter excerpts unscrubbed
    dataset_version: Optional[str] = None  # None: derived from the content
    config: Mapping[str, Any] = dataclasses.field(default_factory=dict)  # manifest "config"
    code_version: Mapping[str, Any] = dataclasses.field(default_factory=dict)


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
    identified = by_kind.get("languages", {})
    if identified:
        written = by_kind.get(writers.LANGUAGE_RECORDS, {})
        tokens = by_kind.get(writers.LANGUAGE_TOKENS, {})
        stats["languages"] = {
            lang: {"records_in": identified.get(lang, 0), "records_out": written.get(lang, 0),
                   "kept_share": round(written.get(lang, 0) / identified[lang], 4)
                   if identified.get(lang) else 0.0,
                   "tokens": tokens.get(lang, 0)}
            for lang in sorted(set(identified) | set(written))}
    info = by_kind.get("info", {})
    if "audio_seconds_in_x1000" in info or "audio_seconds_out_x1000" in info:
        stats["audio"] = {
            "hours_in": round(info.get("audio_seconds_in_x1000", 0) / 3.6e6, 6),
            "hours_out": round(info.get("audio_seconds_out_x1000", 0) / 3.6e6, 6),
            "codecs": {k[len("codec."):]: v for k, v in sorted(info.items())
                       if k.startswith("codec.")},
            "containers": {k[len("container."):]: v for k, v in sorted(info.items())
                           if k.startswith("container.")},
            "split_files": info.get("audio_split_files", 0),
            "transcripts_dropped_split": info.get("transcript_dropped_split", 0)}
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


def _write_json(output_dir: str, name: str, obj: Any) -> None:
    with FileSystems.create(FileSystems.join(output_dir, name)) as f:
        f.write(writers.json_dumps(obj))


def run_columns(spec: OutputSpec) -> Tuple[str, ...]:
    """The columns of a run's non-TFRecord shards (none for TFRecord)."""
    if spec.writer.output_format == "tfrecord":
        return ()
    return tuple(formats.columns_for(dict(spec.config)))


def complete_shards(output_dir: str, shards: List[dict], writer: writers.WriterConfig,
                    columns: Sequence[str] = ()) -> List[dict]:
    """Every shard of every split, the empty ones created, sorted by (split, index)."""
    splits = [writers.TRAIN] + ([writers.VALIDATION] if writer.validation_fraction else [])
    shards = list(shards) + writers.write_empty_shards(output_dir, list(shards), splits,
                                                       writer.output_format, columns)
    shards.sort(key=lambda s: (s["split"], s["index"]))
    return shards


def run_stats(counts: Iterable[Tuple[Tuple[str, str], int]], shards: List[dict]) -> Dict[str, Any]:
    """stats.json: the accounting (:func:`build_stats`) and records, shards and tokens per split."""
    stats = build_stats(sum_counts(counts))
    stats["splits"] = {}
    for s in shards:
        split = stats["splits"].setdefault(s["split"], {"records": 0, "shards": s["num_shards"]})
        split["records"] += s["records"]
    for split, info in stats["splits"].items():
        info["tokens"] = stats["info"].get(f"tokens.{split}", 0)
    return stats


def build_manifest(spec: OutputSpec, stats: Dict[str, Any], shards: List[dict], files: Iterable[dict],
                   dead_files: Sequence[str], tokenizer: Sequence[Any],
                   extras: Sequence[Sequence[Any]]) -> Dict[str, Any]:
    """manifest.json: what was read, what was written (with digests), and how."""
    out = spec.output_dir
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
        from transforms.text.hf_tokenizer import is_hf

        if is_hf(tokenizer[0]):
            written += ["tokenizer/tokenizer.json"]
            rel = "tokenizer/tokenizer.json"
        else:
            written += ["tokenizer/spm.model", "tokenizer/spm.vocab"]
            rel = "tokenizer/spm.model"
        model_path = FileSystems.join(out, *rel.split("/"))
        tokenizer_entry = {"path": rel, "sha256": _sha256_of(model_path)}
    content = hashlib.sha256()
    for s in shard_entries:
        content.update(f"{s['path']}:{s['sha256']}\n".encode())
    if tokenizer_entry:
        content.update(tokenizer_entry["sha256"].encode())
    config = dict(spec.config)
    return {
        "dataset_version": spec.dataset_version or content.hexdigest()[:16],
        "content_sha256": content.hexdigest(),
        "code_version": dict(spec.code_version),
        "config": config,
        "inputs": sorted(
            ({"path": f["path"], "size": f["size"], "mtime": f["mtime"]} for f in files),
            key=lambda f: f["path"]),
        "shards": shard_entries,
        "tokenizer": tokenizer_entry,
        "dead_letter": sorted(_relative(p, out) for p in dead_files),
        "records_out": stats["records_out"],
        "config_sha256": config_digest(config),
        # every file this run wrote: the only files a later run here may delete
        "files": sorted(set(written) | set(FIXED_FILES)),
    }


def write_tfds(output_dir: str, manifest: Dict[str, Any]) -> None:
    """dataset_info.json + features.json for ``tfds.builder_from_directory(output_dir)``.

    Raises TfdsMetadataError (naming the cause) rather than skipping them. Label
    files are named after their feature: the manifest lists them too.
    """
    tfds_files = {_relative(p, output_dir)
                  for p in tfds_meta.write_tfds_metadata(output_dir, manifest)}
    if not tfds_files <= set(manifest["files"]):
        manifest["files"] = sorted(set(manifest["files"]) | tfds_files)
        _write_json(output_dir, "manifest.json", manifest)


def check_run(stats: Dict[str, Any], spec: OutputSpec) -> None:
    """Fail the run loudly: records lost, too many broken, or nothing written (unless allowed)."""
    out = spec.output_dir
    if not stats["accounting"]["holds"]:
        raise AccountingError(
            f"accounting identity broken: {json.dumps({k: stats[k] for k in ('records_in', 'records_out', 'filtered', 'duplicates', 'dead_letter')})}")
    dead = sum(stats["dead_letter"].values())
    if stats["records_in"] and dead / stats["records_in"] > spec.max_dead_letter_fraction:
        raise TooManyBrokenRecords(
            f"{dead} of {stats['records_in']} input records are broken "
            f"({dead / stats['records_in']:.1%} > max_dead_letter_fraction="
            f"{spec.max_dead_letter_fraction:.1%}); see {FileSystems.join(out, 'dead_letter')}")
    if stats["records_out"] == 0 and not spec.allow_empty:
        where = ", ".join(f"{k} {sum(stats[k].values())}" for k in
                          ("filtered", "duplicates", "dead_letter"))
        raise EmptyOutputError(
            f"no record was written (records in {stats['records_in']}: {where}); see "
            f"{FileSystems.join(out, 'stats.json')}, or pass --allow_empty to accept it")


def write_completed(output_dir: str, manifest: Dict[str, Any]) -> None:
    """COMPLETED, last: the digests a trainer and verify check the folder against."""
    with FileSystems.create(FileSystems.join(output_dir, "COMPLETED")) as f:
        f.write(json.dumps({"dataset_version": manifest["dataset_version"],
                            "content_sha256": manifest["content_sha256"],
                            "config_sha256": manifest["config_sha256"]}).encode() + b"\n")


class _FinalizeDoFn(beam.DoFn):
    def __init__(self, spec: OutputSpec, on_success: Optional[Callable[[str], None]] = None):
        self._spec = spec
        self._on_success = on_success

    def process(self, _, counts, shards, files, dead_files, tokenizer, *extras):
        spec = self._spec
        out = spec.output_dir
        if tokenizer:
            from transforms.text.tokenize import resolve_model

            tokenizer = [resolve_model(t) for t in tokenizer]  # a model training beside: its bytes
        shards = complete_shards(out, shards, spec.writer, run_columns(spec))
        stats = run_stats(counts, shards)
        _write_json(out, "stats.json", stats)
        manifest = build_manifest(spec, stats, shards, files, dead_files, tokenizer, extras)
        _write_json(out, "manifest.json", manifest)
        if spec.writer.output_format == "tfrecord":  # TFDS reads TFRecord only
            write_tfds(out, manifest)
        check_run(stats, spec)
        if self._on_success is not None:
            self._on_success(out)
        write_completed(out, manifest)
        yield stats


@dataclasses.dataclass(frozen=True)
class Written:
    """What Finalize waits for (its side inputs): every other write of the run is done."""

    counts: beam.PCollection  # ((kind, reason), n), summed
    shards: beam.PCollection  # one info dict per written shard
    files: beam.PCollection  # the input files read: {path, size, mtime}
    dead_letter: beam.PCollection  # paths of the dead-letter files
    tokenizer: beam.PCollection  # the tokenizer's files, or nothing
    extras: Tuple[beam.PCollection, ...] = ()  # paths of more files written (labels, samples, ...)


class Finalize(beam.PTransform):
    """Writes stats.json, manifest.json and COMPLETED once everything in ``written`` is written.

    ``on_success(output_dir)`` runs after the checks passed and before COMPLETED
    (e.g. draw report.html).
    """

    def __init__(self, spec: OutputSpec, written: Written,
                 on_success: Optional[Callable[[str], None]] = None):
        super().__init__()
        self._spec = spec
        self._written = written
        self._on_success = on_success

    def expand(self, pbegin):
        w = self._written
        AsList = beam.pvalue.AsList
        return (
            pbegin
            | "Once" >> beam.Create([None])
            | "WriteStatsManifestCompleted" >> beam.ParDo(
                _FinalizeDoFn(self._spec, self._on_success),
                AsList(w.counts), AsList(w.shards), AsList(w.files), AsList(w.dead_letter),
                AsList(w.tokenizer), *[AsList(e) for e in w.extras])
        )


@dataclasses.dataclass
class Parts:
    """What a pipeline's steps hand to its end besides the records, gathered as it is built."""

    files: beam.PCollection  # the input files read (the reader's ``files`` output)
    tokenizer: Optional[beam.PCollection] = None  # the tokenizer's files, when one is made
    counts: List[beam.PCollection] = dataclasses.field(default_factory=list)
    dead: List[beam.PCollection] = dataclasses.field(default_factory=list)
    samples: List[beam.PCollection] = dataclasses.field(default_factory=list)
    extras: List[beam.PCollection] = dataclasses.field(default_factory=list)  # more files written

    def add(self, counts: beam.PCollection, dead: Optional[beam.PCollection] = None,
            samples: Optional[beam.PCollection] = None) -> None:
        """A step's ``counts`` output, and its dead letters and samples when it has them."""
        self.counts.append(counts)
        if dead is not None:
            self.dead.append(dead)
        if samples is not None:
            self.samples.append(samples)


def write_dataset(records: beam.PCollection, encode: beam.PTransform, parts: Parts,
                  spec: OutputSpec, on_success: Optional[Callable[[str], None]] = None
                  ) -> beam.PCollection:
    """The end of every pipeline: encode -> write shards -> dead letter -> samples -> finalize.

    Args:
      records: the records to write.
      encode: records -> ``examples`` (split, id, Example bytes, tokens, bytes, (source,
        position)) and ``counts``, e.g. :class:`~transforms.write.shards.EncodeExamples`.
      parts: the counts, dead letters, input files, tokenizer and extra files of the steps.
      spec: where to write, the run's checks, and what the manifest records.
      on_success: called with the output folder before COMPLETED (e.g. draw report.html).

    Returns:
      stats.json's content, once everything is written.
    """
    out = spec.output_dir
    p = records.pipeline
    examples = records | "EncodeExamples" >> encode
    shards = examples.examples | "WriteShards" >> writers.WriteShards(out, spec.writer,
                                                                      run_columns(spec))
    counts = tuple(parts.counts) + (examples[accounting.COUNTS], shards[accounting.COUNTS])
    dead = tuple(parts.dead) + (shards[accounting.DEAD],)
    dead_files = dead | "DeadLetter" >> WriteDeadLetter(out, spec.dead_letter_raw)
    total = counts | "MergeCounts" >> beam.Flatten() | "SumCounts" >> beam.CombinePerKey(sum)
    samples = tuple(parts.samples) + (examples[accounting.SAMPLES],)
    samples_file = samples | "MergeSamples" >> beam.Flatten() | "Samples" >> WriteSamples(out)
    tokenizer = parts.tokenizer
    if tokenizer is None:
        tokenizer = p | "NoTokenizer" >> beam.Create([])
    written = Written(counts=total, shards=shards.shards, files=parts.files,
                      dead_letter=dead_files, tokenizer=tokenizer,
                      extras=tuple(parts.extras) + (samples_file,))
    return p | "Finalize" >> Finalize(spec, written, on_success)
