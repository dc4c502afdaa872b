"""The text pipeline: read, clean, filter, exact-dedup, tokenize, write TFRecord shards.

Every input record is accounted for in ``DIR/stats.json``: written, or counted
with its reason under ``filtered``, ``duplicates`` or ``dead_letter`` (broken
inputs, one JSON line each in ``DIR/dead_letter/``). ``DIR/COMPLETED`` is
written last, only when the run succeeded.

Local run (DirectRunner, pinned to the FnApiRunner so nothing is downloaded)::

    python -m beam_pipelines.text \\
        --input 'data/sample/**' --output_dir /tmp/beamtrain-out \\
        --steps clean,filter,dedup,tokenize --vocab_size 8000

Dataflow::

    python -m beam_pipelines.text \\
        --input 'gs://BUCKET/crawl/*.warc.gz' --output_dir gs://BUCKET/out/v1 \\
        --runner DataflowRunner --project PROJECT --region us-central1 \\
        --temp_location gs://BUCKET/tmp --setup_file ./setup.py
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from typing import Any, Dict, List, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions, SetupOptions

from beam_pipelines import safety
from beam_pipelines.runner import runner_for
from beam_pipelines.safety import OptionError
from transforms import accounting
from transforms.text.clean import Clean, CleanConfig
from transforms.dedup.exact import ExactDedup
from transforms.text.content import (DEFAULT_BLOCKLIST, DEFAULT_LICENSES, BlocklistConfig,
                                LicenseConfig, load_word_list)
from transforms.text.filters import FilterConfig
from transforms.text.pii import KINDS as PII_KINDS
from transforms.text.pii import PiiConfig
from transforms.text.pii_step import ScrubPii
from transforms.dedup.minhash import MinHashConfig
from transforms.dedup.near import NearDedup, NearDedupConfig
from transforms.text.quality import QualityFilter
from transforms.read.corpus import ReadCorpus, ReaderConfig
from transforms.write.finalize import Finalize
from transforms.text.tokenize import MIN_VOCAB_SIZE, Encode, LoadTokenizer, TokenizerConfig, TrainTokenizer
from transforms.write.shards import EncodeExamples, WriteShards, WriterConfig

__all__ = ["add_output_args", "TextPipelineOptions", "STEPS", "build_pipeline", "run", "parse_steps"]

STEPS = ("clean", "filter", "dedup", "pii", "tokenize")
AVAILABLE_STEPS = STEPS


def parse_steps(value: Optional[str]) -> List[str]:
    if value is None or value.strip() in ("", "all"):
        return list(AVAILABLE_STEPS)
    steps = [s.strip() for s in value.split(",") if s.strip()]
    for s in steps:
        if s not in STEPS:
            raise OptionError(f"--steps: unknown step {s!r}; choose from {','.join(STEPS)}")
        if s not in AVAILABLE_STEPS:
            raise OptionError(f"--steps: step {s!r} is not available in this version "
                              f"(available: {','.join(AVAILABLE_STEPS)})")
    if len(set(steps)) != len(steps):
        raise OptionError(f"--steps: a step is listed twice in {value!r}")
    # Steps always run in the canonical order.
    return [s for s in STEPS if s in steps]


def _flag(value) -> bool:
    """A boolean option: ``--x`` alone, or ``--x=true/false`` as Flex Templates pass it."""
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on", ""):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


def add_output_args(parser) -> None:
    """Options every beamtrain pipeline has: inputs, output, splits, shards, broken-input policy.

    Each is added only if the parser does not have it yet: Beam parses the
    options of every pipeline module imported in one process with one parser.
    """
    _add(parser, "--input", action="append", default=None,
         help="Input glob (local or any Beam filesystem); repeat for several, "
         "or separate them with commas.")
    _add(parser, "--output_dir", default=None,
         help="Output directory; {date} or {datetime} in it become the launch "
         "time (UTC), for scheduled runs.")
    _add(parser, "--validation_fraction", type=float, default=0.05,
         help="Share of records (by a hash of the id) in the validation split.")
    _add(parser, "--num_shards", type=int, default=0,
         help="Shards per split; 0 = one per --target_shard_mb of data.")
    _add(parser, "--target_shard_mb", type=int, default=128,
         help="Target shard size when --num_shards is 0.")
    _add(parser, "--max_dead_letter_fraction", type=float, default=0.1,
         help="Fail the run when more than this share of input records is broken.")
    _add(parser, "--report", type=_flag, nargs="?", const=True, default=True,
         help="Write report.html beside stats.json at the end of the run (--report=false: skip).")
    _add(parser, "--dataset_version", default=None,
         help="Version label in manifest.json (default: derived from the content).")
    _add(parser, "--dead_letter_raw", type=_flag, nargs="?", const=True, default=False,
         help="Keep raw bytes in the dead letter's raw_excerpt and detail (default: PII "
         "scrubbed like samples; ids are never scrubbed).")
    _add(parser, "--duplicate_ids", default="keep", choices=["keep", "dead_letter"],
         help="Records sharing an input id: keep all (the 2nd, 3rd, ... written as ID#dup1, "
         "ID#dup2, ...) or send the extra ones to the dead letter.")
    _add(parser, "--allow_empty", type=_flag, nargs="?", const=True, default=False,
         help="Complete a run that writes no record (default: such a run fails, exit 1).")
    _add(parser, "--wait_until_finish", type=_flag, nargs="?", const=True, default=True,
         help="Wait for the job and print its summary (--wait_until_finish=false: submit and "
         "exit; Flex Template launches never wait).")


def _add(parser, flag, **kwargs) -> None:
    if flag not in parser._option_string_actions:
        parser.add_argument(flag, **kwargs)


class TextPipelineOptions(PipelineOptions):
    @classmethod
    def _add_argparse_args(cls, parser):
        add_output_args(parser)
        parser.add_argument("--steps", default=None,
                            help="Comma-separated steps among clean,filter,dedup,pii,tokenize "
                                 "(default: all five, in that order).")
        parser.add_argument("--tokenizer_model", default=None,
                            help="Reuse this SentencePiece model instead of training one.")
        parser.add_argument("--vocab_size", type=int, default=8000,
                            help="Vocabulary size of the SentencePiece model trained in the run.")
        parser.add_argument("--spm_model_type", default="unigram",
                            help="SentencePiece model type: unigram, bpe, char or word.")
        parser.add_argument("--spm_sample_docs", type=int, default=20000,
                            help="Documents in the deterministic tokenizer training sample.")
        parser.add_argument("--no_eos", type=_flag, nargs="?", const=True, default=False,
                            help="Do not append the eos id to each document's input_ids.")
        parser.add_argument("--text_field", default="text", help="JSONL/Parquet text field.")
        parser.add_argument("--id_field", default="id", help="JSONL/Parquet id field.")
        parser.add_argument("--max_doc_bytes", type=int, default=1 << 20,
                            help="Documents larger than this go to the dead letter.")
        parser.add_argument("--read_chunk_mb", type=int, default=16,
                            help="Plain JSONL files are read in byte ranges of this size.")
        parser.add_argument("--max_file_bytes", type=int, default=64 << 30,
                            help="Read at most this many (decompressed) bytes per file; the rest "
                                 "is one dead-letter record (file_too_large).")
        parser.add_argument("--max_decompression_ratio", type=float, default=100.0,
                            help="Stop a compressed file inflating more than this many times "
                                 "(checked after 16 MiB; decompression_bomb).")
        parser.add_argument("--max_dead_per_file", type=int, default=1000,
                            help="Stop reading a file after this many broken records when more "
                                 "than half its records are broken (too_many_broken_records).")
        parser.add_argument("--html", default="auto", choices=["auto", "always", "never"],
                            help="Treat text as HTML: auto (content type or sniffing), always, never.")
        parser.add_argument("--keep_boilerplate", type=_flag, nargs="?", const=True, default=False,
                            help="Extract all visible HTML text instead of the main content.")
        parser.add_argument("--filter_config", default=None,
                            help="JSON object (or path to a JSON file) overriding FilterConfig fields, "
                                 "e.g. '{\"c4_filter_curly_bracket\": false}'.")
        parser.add_argument("--min_chars", type=int, default=None,
                            help="Drop documents shorter than this (characters, after cleaning).")
        parser.add_argument("--max_chars", type=int, default=None,
                            help="Drop documents longer than this (characters, after cleaning).")
        parser.add_argument("--license_allow", default=",".join(DEFAULT_LICENSES),
                            help="Licence families kept when a record has a licence field.")
        parser.add_argument("--license_missing", default="keep", choices=["keep", "drop"],
                            help="What to do with records that carry no licence.")
        parser.add_argument("--no_license_filter", type=_flag, nargs="?", const=True, default=False)
        parser.add_argument("--blocklist_file", default=None,
                            help="Word list (one word or phrase a line) for the content filter; "
                                 "default: a small built-in list.")
        parser.add_argument("--blocklist_threshold", type=float, default=0.01,
                            help="Drop a document when blocked words exceed this share of its words.")
        parser.add_argument("--no_blocklist", type=_flag, nargs="?", const=True, default=False)
        parser.add_argument("--pii_mode", default="tag", choices=["tag", "mask", "pseudonym"],
                            help="Replace PII by <KIND>, by --pii_mask, or by a salted pseudonym.")
        parser.add_argument("--pii_mask", default="[REDACTED]")
        parser.add_argument("--pii_salt_env", default="BEAMTRAIN_PII_SALT",
                            help="Environment variable holding the pseudonym salt (never a flag: "
                                 "it would land in manifest.json and shell history).")
        parser.add_argument("--pii_kinds", default=",".join(PII_KINDS))
        parser.add_argument("--pii_phone_regions", default="US,GB",
                            help="Countries whose national phone formats are recognised.")
        parser.add_argument("--pii_drop_above", type=int, default=0,
                            help="Drop documents with more than this many findings (0: scrub all).")
        parser.add_argument("--no_near_dedup", type=_flag, nargs="?", const=True, default=False,
                            help="dedup step: exact duplicates only, no MinHash LSH.")
        parser.add_argument("--near_dup_threshold", type=float, default=0.8,
                            help="Shingle Jaccard at or above which documents are near-duplicates.")
        parser.add_argument("--minhash_num_perm", type=int, default=128)
        parser.add_argument("--minhash_seed", type=int, default=1)
        parser.add_argument("--minhash_ngram", type=int, default=5, help="Words per shingle.")
        parser.add_argument("--minhash_char_ngram", type=int, default=0,
                            help="Shingle by this many characters instead of words (no-space scripts).")
        parser.add_argument("--lsh_bands", type=int, default=0, help="LSH bands (0: from the threshold).")
        parser.add_argument("--lsh_rows", type=int, default=0, help="LSH rows per band (0: from the threshold).")
        parser.add_argument("--near_dup_verify", default="estimate", choices=["estimate", "exact", "none"],
                            help="Check LSH candidates by estimated or exact Jaccard before they count.")
        parser.add_argument("--near_dup_max_rounds", type=int, default=10,
                            help="Connected-components rounds (large-star + small-star each).")
        parser.add_argument("--near_dup_clusters", type=_flag, nargs="?", const=True, default=False,
                            help="Write cluster membership (id, cluster_id, cluster_size) to "
                                 "DIR/near_dup_clusters/.")


def _load_json_arg(name: str, value: Optional[str]) -> Dict[str, Any]:
    if not value:
        return {}
    text = value
    if not value.lstrip().startswith("{"):
        try:
            with FileSystems.open(value) as f:
                text = f.read().decode("utf-8")
        except Exception as e:
            raise OptionError(f"--{name}: cannot read {value!r}: {e}") from e
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as e:
        raise OptionError(f"--{name}: not valid JSON: {e}") from e
    if not isinstance(obj, dict):
        raise OptionError(f"--{name}: expected a JSON object")
    return obj


def validate_io(opts, options: Optional[PipelineOptions] = None) -> List[str]:
    """The checks every pipeline makes on --input and --output_dir; returns the input globs.

    Expands ``{date}``/``{datetime}`` in --output_dir, checks every path has a
    filesystem (cloud paths on Dataflow). Listing the globs (every one must
    match a file, and inputs and output must not overlap) is left to
    :func:`prepare`, so that validating touches no filesystem.
    """
    if not opts.input:
        raise OptionError("--input: at least one input glob is required")
    if not opts.output_dir:
        raise OptionError("--output_dir: required")
    opts.output_dir = safety.resolve_output_dir(opts.output_dir)
    inputs = safety.split_inputs(opts.input)
    safety.check_paths(inputs, opts.output_dir, options or opts)
    return inputs


def run_settings(opts) -> Dict[str, Any]:
    """The parts of the configuration every pipeline shares (they land in manifest.json)."""
    return {"dead_letter_raw": bool(opts.dead_letter_raw), "allow_empty": bool(opts.allow_empty),
            "report": bool(opts.report)}


def validate(opts: TextPipelineOptions) -> Dict[str, Any]:
    """Check every parameter; returns the resolved configuration (for manifest.json)."""
    inputs = validate_io(opts)
    steps = parse_steps(opts.steps)
    if "tokenize" in steps and not opts.tokenizer_model and opts.vocab_size < MIN_VOCAB_SIZE:
        raise OptionError(f"--vocab_size: must be at least {MIN_VOCAB_SIZE} (SentencePiece reserves "
                          f"4 special ids and 256 byte-fallback pieces), got {opts.vocab_size}")
    if opts.max_doc_bytes <= 0:
        raise OptionError(f"--max_doc_bytes: must be positive, got {opts.max_doc_bytes}")
    try:
        ReaderConfig(max_file_bytes=opts.max_file_bytes,
                     max_decompression_ratio=opts.max_decompression_ratio,
                     max_dead_per_file=opts.max_dead_per_file)
    except ValueError as e:
        raise OptionError(f"--max_file_bytes / --max_decompression_ratio / --max_dead_per_file: {e}")
    if opts.read_chunk_mb <= 0:
        raise OptionError(f"--read_chunk_mb: must be positive, got {opts.read_chunk_mb}")
    if not 0.0 <= opts.validation_fraction < 1.0:
        raise OptionError(f"--validation_fraction: must be in [0, 1), got {opts.validation_fraction}")
    if opts.num_shards < 0:
        raise OptionError(f"--num_shards: must be >= 0, got {opts.num_shards}")
    if opts.target_shard_mb <= 0:
        raise OptionError(f"--target_shard_mb: must be positive, got {opts.target_shard_mb}")
    if not 0.0 <= opts.max_dead_letter_fraction <= 1.0:
        raise OptionError(
            f"--max_dead_letter_fraction: must be in [0, 1], got {opts.max_dead_letter_fraction}")
    if opts.spm_sample_docs <= 0:
        raise OptionError(f"--spm_sample_docs: must be positive, got {opts.spm_sample_docs}")
    if opts.spm_model_type not in ("unigram", "bpe", "char", "word"):
        raise OptionError(f"--spm_model_type: unknown type {opts.spm_model_type!r}")
    if not 0.0 < opts.near_dup_threshold < 1.0:
        raise OptionError(f"--near_dup_threshold: must be in (0, 1), got {opts.near_dup_threshold}")
    if opts.minhash_num_perm < 2:
        raise OptionError(f"--minhash_num_perm: must be at least 2, got {opts.minhash_num_perm}")
    if opts.minhash_ngram < 1 or opts.minhash_char_ngram < 0:
        raise OptionError("--minhash_ngram must be >= 1 and --minhash_char_ngram >= 0")
    if opts.near_dup_max_rounds < 1:
        raise OptionError(f"--near_dup_max_rounds: must be >= 1, got {opts.near_dup_max_rounds}")
    try:
        near = NearDedupConfig(
            minhash=MinHashConfig(
                num_perm=opts.minhash_num_perm, seed=opts.minhash_seed, ngram=opts.minhash_ngram,
                char_ngram=opts.minhash_char_ngram, threshold=opts.near_dup_threshold,
                bands=opts.lsh_bands, rows=opts.lsh_rows),
            verify=opts.near_dup_verify, max_rounds=opts.near_dup_max_rounds)
        near_bands, near_rows = near.lsh_params()
    except ValueError as e:
        raise OptionError(f"--near_dup_* / --minhash_* / --lsh_*: {e}") from e
    pii_kinds = tuple(k.strip().upper() for k in opts.pii_kinds.split(",") if k.strip())
    salt = os.environ.get(opts.pii_salt_env, "") if opts.pii_mode == "pseudonym" else ""
    try:
        PiiConfig(kinds=pii_kinds, mode=opts.pii_mode, mask=opts.pii_mask, salt=salt,
                  phone_regions=tuple(r.strip().upper() for r in opts.pii_phone_regions.split(",")))
    except ValueError as e:
        raise OptionError(f"--pii_*: {e} (the salt comes from ${opts.pii_salt_env})") from e
    if opts.pii_drop_above < 0:
        raise OptionError("--pii_drop_above: must be >= 0")
    if not 0.0 <= opts.blocklist_threshold < 1.0:
        raise OptionError(f"--blocklist_threshold: must be in [0, 1), got {opts.blocklist_threshold}")
    if opts.blocklist_file and not FileSystems.exists(opts.blocklist_file):
        raise OptionError(f"--blocklist_file: no such file {opts.blocklist_file!r}")
    overrides = _load_json_arg("filter_config", opts.filter_config)
    if opts.min_chars is not None:
        overrides["min_chars"] = opts.min_chars
    if opts.max_chars is not None:
        overrides["max_chars"] = opts.max_chars
    try:
        filter_config = FilterConfig.from_dict(overrides)
    except (TypeError, ValueError) as e:
        raise OptionError(f"--filter_config: {e}") from e
    if opts.tokenizer_model and "tokenize" in steps and not FileSystems.exists(opts.tokenizer_model):
        raise OptionError(f"--tokenizer_model: no such file {opts.tokenizer_model!r}")
    return {
        "inputs": inputs,
        "output_dir": opts.output_dir,
        "steps": steps,
        "reader": {"text_field": opts.text_field, "id_field": opts.id_field,
                   "max_doc_bytes": opts.max_doc_bytes, "chunk_bytes": opts.read_chunk_mb << 20,
                   "max_file_bytes": opts.max_file_bytes,
                   "max_decompression_ratio": opts.max_decompression_ratio,
                   "max_dead_per_file": opts.max_dead_per_file},
        "clean": {"html": opts.html, "main_content": not opts.keep_boilerplate},
        "filter": filter_config.to_dict(),
        "tokenizer": {"model": opts.tokenizer_model, "vocab_size": opts.vocab_size,
                      "model_type": opts.spm_model_type, "sample_docs": opts.spm_sample_docs,
                      "add_eos": not opts.no_eos},
        "license": None if opts.no_license_filter else {
            "allow": [a.strip() for a in opts.license_allow.split(",") if a.strip()],
            "missing": opts.license_missing},
        "blocklist": None if opts.no_blocklist else {
            "file": opts.blocklist_file, "threshold": opts.blocklist_threshold},
        "pii": {"kinds": list(pii_kinds), "mode": opts.pii_mode, "mask": opts.pii_mask,
                "salt_env": opts.pii_salt_env,
                "phone_regions": [r.strip().upper() for r in opts.pii_phone_regions.split(",")],
                "drop_above": opts.pii_drop_above},
        "near_dedup": None if opts.no_near_dedup else {
            "threshold": opts.near_dup_threshold, "num_perm": opts.minhash_num_perm,
            "seed": opts.minhash_seed, "ngram": opts.minhash_ngram,
            "char_ngram": opts.minhash_char_ngram, "bands": near_bands, "rows": near_rows,
            "verify": opts.near_dup_verify, "verify_threshold": near.accept_threshold(),
            "max_rounds": opts.near_dup_max_rounds, "write_clusters": opts.near_dup_clusters},
        "writer": {"validation_fraction": opts.validation_fraction, "num_shards": opts.num_shards,
                   "target_shard_bytes": opts.target_shard_mb << 20,
                   "duplicate_ids": opts.duplicate_ids},
        "max_dead_letter_fraction": opts.max_dead_letter_fraction,
        **run_settings(opts),
    }


def code_version() -> Dict[str, Any]:
    from importlib import metadata

    try:
        version = metadata.version("beamtrain")
    except metadata.PackageNotFoundError:
        version = "unknown"
    commit = None
    try:
        here = os.path.dirname(os.path.abspath(__file__))
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=here, capture_output=True,
                                text=True, timeout=5).stdout.strip() or None
    except Exception:
        pass
    return {"beamtrain": version, "git_commit": commit, "apache_beam": beam.__version__}


def near_dedup_config(nd: Dict[str, Any]) -> NearDedupConfig:
    return NearDedupConfig(
        minhash=MinHashConfig(num_perm=nd["num_perm"], seed=nd["seed"], ngram=nd["ngram"],
                              char_ngram=nd["char_ngram"], threshold=nd["threshold"],
                              bands=nd["bands"], rows=nd["rows"]),
        verify=nd["verify"], verify_threshold=nd["verify_threshold"], max_rounds=nd["max_rounds"])


def write_report(out: str) -> None:
    """report.html beside stats.json, drawn by the pipeline before COMPLETED.

    A failure to draw it is logged, never fatal to the run: the data is written.
    """
    try:
        from beam_pipelines.report import build_report

        build_report(out)
    except Exception as e:  # noqa: BLE001 - the data is written; say why the report is not
        logging.getLogger(__name__).warning("report.html not written: %s: %s", type(e).__name__, e)


def _dead_letter_line(entry: Dict[str, Any], raw: bool) -> str:
    if not raw:
        entry = accounting.scrub_dead_letter_entry(entry)
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def write_dead_letter(dead: List, out: str, raw: bool = False):
    """Every dead-letter entry, one JSON line each, to DIR/dead_letter/.

    Excerpts and details are PII scrubbed unless ``raw`` (--dead_letter_raw);
    ids and source paths are written as they are.
    """
    return (
        dead
        | "MergeDeadLetters" >> beam.Flatten()
        | "DeadToJson" >> beam.Map(_dead_letter_line, raw)
        | "WriteDeadLetter" >> beam.io.WriteToText(
            FileSystems.join(out, "dead_letter", "dead_letter"), file_name_suffix=".jsonl",
            num_shards=1)
    )


SAMPLES_PER_OUTCOME = 5


def sum_counts_and_write_samples(counts: List, out: str):
    """Sum the pipeline's tallies; write the samples that travel with them to DIR/samples.jsonl.

    Returns (summed counts, the written samples file) for :class:`Finalize`.
    """
    merged = counts | "MergeCounts" >> beam.Flatten()
    total = (merged
             | "OnlyCounts" >> beam.Filter(lambda kv: not accounting.is_sample(kv))
             | "SumCounts" >> beam.CombinePerKey(sum))
    samples = (merged
               | "OnlySamples" >> beam.Filter(accounting.is_sample)
               | "FewPerOutcome" >> beam.combiners.Sample.FixedSizePerKey(SAMPLES_PER_OUTCOME)
               | "SampleLines" >> beam.FlatMap(lambda kv: sorted(kv[1]))
               | "WriteSamples" >> beam.io.WriteToText(
                   FileSystems.join(out, "samples"), file_name_suffix=".jsonl", num_shards=1,
                   shard_name_template=""))
    return total, samples


def build_pipeline(p: beam.Pipeline, config: Dict[str, Any]) -> None:
    """Add the text pipeline to ``p`` from a :func:`validate`d configuration."""
    out = config["output_dir"]
    steps = config["steps"]
    counts = []
    dead = []

    read = p | "Read" >> ReadCorpus(config["inputs"], ReaderConfig(**config["reader"]))
    records = read["records"]
    counts.append(read["counts"])
    dead.append(read["dead"])

    if "clean" in steps:
        cleaned = records | "Clean" >> Clean(CleanConfig(**config["clean"]))
        records = cleaned.records
        counts.append(cleaned[accounting.COUNTS])
    if "filter" in steps:
        lic = config.get("license")
        blk = config.get("blocklist")
        blocklist = None
        if blk:
            words = load_word_list(blk["file"]) if blk["file"] else DEFAULT_BLOCKLIST
            blocklist = BlocklistConfig(words=words, threshold=blk["threshold"])
        kept = records | "Filter" >> QualityFilter(
            FilterConfig.from_dict(config["filter"]),
            LicenseConfig(allow=tuple(lic["allow"]), missing=lic["missing"]) if lic else None,
            blocklist)
        records = kept.records
        counts.append(kept[accounting.COUNTS])
    cluster_files = []
    if "dedup" in steps:
        deduped = records | "ExactDedup" >> ExactDedup()
        records = deduped.records
        counts.append(deduped[accounting.COUNTS])
        nd = config.get("near_dedup")
        if nd:
            near = records | "NearDedup" >> NearDedup(near_dedup_config(nd))
            records = near["records"]
            counts.append(near["counts"])
            if nd["write_clusters"]:
                cluster_files.append(
                    near["clusters"]
                    | "ClustersToJson" >> beam.Map(lambda row: json.dumps(row, sort_keys=True))
                    | "WriteClusters" >> beam.io.WriteToText(
                        FileSystems.join(out, "near_dup_clusters", "clusters"),
                        file_name_suffix=".jsonl"))
    if "pii" in steps:
        pc = config["pii"]
        salt = os.environ.get(pc["salt_env"], "") if pc["mode"] == "pseudonym" else ""
        scrubbed = records | "Pii" >> ScrubPii(
            PiiConfig(kinds=tuple(pc["kinds"]), mode=pc["mode"], mask=pc["mask"], salt=salt,
                      phone_regions=tuple(pc["phone_regions"])), pc["drop_above"])
        records = scrubbed.records
        counts.append(scrubbed[accounting.COUNTS])
    tokenizer = p | "NoTokenizer" >> beam.Create([])
    if "tokenize" in steps:
        tcfg = config["tokenizer"]
        tok_config = TokenizerConfig(
            vocab_size=tcfg["vocab_size"], model_type=tcfg["model_type"],
            sample_docs=tcfg["sample_docs"], add_eos=tcfg["add_eos"])
        if tcfg["model"]:
            tokenizer = p | "LoadTokenizer" >> LoadTokenizer(tcfg["model"], out)
        else:
            tokenizer = records | "TrainTokenizer" >> TrainTokenizer(tok_config, out)
        encoded = records | "Tokenize" >> Encode(tokenizer, tok_config)
        records = encoded.records
        counts.append(encoded[accounting.COUNTS])

    examples = records | "EncodeExamples" >> EncodeExamples(WriterConfig(**config["writer"]))
    counts.append(examples[accounting.COUNTS])
    shards = examples.examples | "WriteShards" >> WriteShards(out, WriterConfig(**config["writer"]))
    counts.append(shards[accounting.COUNTS])

    dead = dead + [shards[accounting.DEAD]]
    dead_files = write_dead_letter(dead, out, config.get("dead_letter_raw", False))
    total_counts, samples_file = sum_counts_and_write_samples(counts, out)
    _ = p | "Finalize" >> Finalize(
        out, total_counts, shards.shards, read["files"], dead_files, tokenizer,
        config=config, code_version=code_version(),
        max_dead_letter_fraction=config["max_dead_letter_fraction"],
        dataset_version=config.get("dataset_version"), extras=[samples_file] + cluster_files,
        on_success=write_report if config.get("report", True) else None)


class RunFailed(RuntimeError):
    """The pipeline ran and failed; the message is its one-line cause."""


def prepare(argv: Optional[List[str]], own_options: List[type], validate_fn):
    """Flags, parameters and the output folder, checked before anything runs.

    Returns (PipelineOptions, config); a bad parameter exits 2 with one line.
    """
    options = PipelineOptions(argv)
    try:
        safety.check_flags(argv, own_options)
        config = validate_fn(options)
        safety.check_inputs(config["inputs"], config["output_dir"])
        safety.prepare_output_dir(config["output_dir"])
    except OptionError as e:
        sys.stderr.write(f"error: {e}\n")
        raise SystemExit(2)
    options.view_as(SetupOptions).save_main_session = False
    return options, config


def execute(options: PipelineOptions, config: Dict[str, Any], build, wait: bool = True
            ) -> Optional[Dict[str, Any]]:
    """Build and run the pipeline; returns stats.json's content, or None when not waiting.

    Everything the run reports (stats.json, manifest.json, report.html,
    COMPLETED) is written by the pipeline itself, so a submitted job (a Flex
    Template launch, ``--wait_until_finish=false``) needs nothing more from the
    launcher. A failed run raises :class:`RunFailed` with its one-line cause.
    """
    out = config["output_dir"]
    p = beam.Pipeline(runner=runner_for(options), options=options)
    build(p, config)
    try:
        result = p.run()
        if not wait:
            job = getattr(result, "job_id", lambda: None)
            print(f"submitted:   job {job() if callable(job) else job or ''} writes {out}/ "
                  "(COMPLETED last)".replace("job  ", "job "))
            return None
        state = result.wait_until_finish()
        if state is not None and str(state).upper().split(".")[-1] not in ("DONE", "UNKNOWN"):
            raise RuntimeError(f"the job ended in state {state}")
    except Exception as e:  # noqa: BLE001 - say why in one line, keep the cause chained
        raise RunFailed(safety.one_line_cause(e)) from e
    with FileSystems.open(FileSystems.join(out, "stats.json")) as f:
        stats = json.loads(f.read())
    print_summary(out, stats)
    return stats


def main(run_fn) -> None:
    """Command-line entry: a failed run prints its one-line cause last and exits 1.

    Beam logs a failing DoFn's whole traceback from its worker; the cause is
    printed here instead (set BEAMTRAIN_DEBUG=1 to see Beam's log).
    """
    logging.basicConfig(level=logging.WARNING)
    if not os.environ.get("BEAMTRAIN_DEBUG"):
        logging.getLogger("apache_beam.runners.common").setLevel(logging.CRITICAL)
    try:
        run_fn()
    except RunFailed as e:
        sys.stdout.flush()
        sys.stderr.write(f"error: {e}\n")
        raise SystemExit(1)


def _validate_text(options: PipelineOptions) -> Dict[str, Any]:
    opts = options.view_as(TextPipelineOptions)
    config = validate(opts)
    config["dataset_version"] = opts.dataset_version
    return config


def run(argv: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Parse options, run the pipeline, return stats.json's content (None when only submitted)."""
    options, config = prepare(argv, [TextPipelineOptions], _validate_text)
    wait = options.view_as(TextPipelineOptions).wait_until_finish
    return execute(options, config, build_pipeline, wait)


def print_summary(out: str, stats: Dict[str, Any]) -> None:
    """Where the outputs are and where the records went."""
    if FileSystems.exists(FileSystems.join(out, "report.html")):
        print(f"report:      {FileSystems.join(out, 'report.html')}")
    print(f"shards:      {FileSystems.join(out, 'data')}/")
    print(f"stats:       {FileSystems.join(out, 'stats.json')}")
    print(f"dead letter: {FileSystems.join(out, 'dead_letter')}/")
    print(f"records in {stats['records_in']}, out {stats['records_out']}, "
          f"filtered {sum(stats['filtered'].values())}, duplicates "
          f"{sum(stats['duplicates'].values())}, dead letter {sum(stats['dead_letter'].values())}")


if __name__ == "__main__":
    main(run)
