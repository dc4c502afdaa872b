"""Every flag of every beamtrain pipeline, declared once.

A :class:`Flag` names its type, default, help text, the check its value must
pass and the regex its Flex Template parameter is validated with; flags are
grouped by concern (:class:`Group`). From the same declarations come

* the ``PipelineOptions`` subclasses Beam parses (:class:`OutputOptions`,
  :class:`TextPipelineOptions`, :class:`ImagePipelineOptions`,
  :class:`MultimodalPipelineOptions`), one argument group per concern;
* the per-flag checks (:func:`check_values`; checks that relate several flags
  are made where the typed config is built, in :mod:`beam_pipelines.config`);
* ``templates/<pipeline>/metadata.json`` (``templates/make_metadata.py``).

**Why the same flag may be added twice.** Beam parses the flags of *every*
``PipelineOptions`` subclass imported in a process with one argparse parser
(``PipelineOptions.get_all_options``), and only direct subclasses are asked for
their flags there. Each pipeline's class is therefore a direct subclass that
adds the output flags and its own, so the output flags reach that parser once
per pipeline class. :func:`add_groups` is the one place that lets the second
addition of a flag pass, the way Beam's own portable runner adds its runner
options (an ``argparse.ArgumentError`` "conflicting option string"). A name
declared by two different :class:`Flag` s is refused when this module loads.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines.safety import OptionError
from transforms.text.content import DEFAULT_LICENSES
from transforms.text.pii import KINDS as PII_KINDS

__all__ = ["Flag", "Group", "OptionError", "boolean", "OutputOptions", "TextPipelineOptions",
           "ImagePipelineOptions", "MultimodalPipelineOptions", "AudioPipelineOptions", "PIPELINE_OPTIONS", "STEPS",
           "add_groups", "flags_of", "check_values", "parse_languages", "parse_steps"]

STEPS = ("clean", "lang", "filter", "dedup", "pii", "tokenize")


def boolean(value) -> bool:
    """A boolean flag: ``--x`` alone, or ``--x=true/false`` as Flex Templates pass it."""
    if isinstance(value, bool):
        return value
    lowered = str(value).strip().lower()
    if lowered in ("1", "true", "yes", "on", ""):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise ValueError(f"not a boolean: {value!r}")


# --------------------------------------------------------------------------
# Template regexes (metadata.json "regexes"; the launcher checks parameters with them)

GS_PATH = r"^gs://[^\n\r]+$"
GS_PATHS = r"^gs://[^,\n\r]+(,gs://[^,\n\r]+)*$"
BOOL = r"^(true|false)$"
INT = r"^[0-9]{1,9}$"
FRACTION = r"^(0(\.[0-9]+)?|1(\.0+)?)$"
OPEN_FRACTION = r"^0?\.[0-9]*[1-9][0-9]*$"
TEXT = r"^[^\n\r]*$"
FIELD_NAME = r"^[A-Za-z_][A-Za-z0-9_]{0,63}$"
ENV_NAME = r"^[A-Z_][A-Z0-9_]{0,63}$"
VOCAB_SIZE = r"^(26[2-9]|2[7-9][0-9]|[3-9][0-9]{2}|[1-9][0-9]{3,6})$"
NUMBER = r"^[0-9]+(\.[0-9]+)?$"
_STEP = "(" + "|".join(STEPS) + ")"
_PII_KIND = "(" + "|".join(PII_KINDS) + ")"


# --------------------------------------------------------------------------
# Checks: each returns what is wrong with a value (said after "--flag: "), or None

Check = Callable[[Any], Optional[str]]


def in_range(lo=None, hi=None, lo_open: bool = False, hi_open: bool = False) -> Check:
    """A number within bounds; ``None`` (an unset optional flag) passes."""
    def check(value):
        if value is None:
            return None
        low_ok = lo is None or (value > lo if lo_open else value >= lo)
        high_ok = hi is None or (value < hi if hi_open else value <= hi)
        if low_ok and high_ok:
            return None
        if hi is None:
            bound = "positive" if (lo == 0 and lo_open) else f">= {lo}"
            return f"must be {bound}, got {value}"
        return (f"must be in {'(' if lo_open else '['}{lo}, {hi}{')' if hi_open else ']'}, "
                f"got {value}")
    return check


POSITIVE = in_range(0, lo_open=True)
NOT_NEGATIVE = in_range(0)
FRACTION_BELOW_1 = in_range(0.0, 1.0, hi_open=True)


def one_of(*choices: str) -> Check:
    return lambda value: None if value in choices else f"unknown value {value!r}"


def existing_file(value) -> Optional[str]:
    return None if not value or FileSystems.exists(value) else f"no such file {value!r}"


def folder(value) -> Optional[str]:
    """A folder on any Beam filesystem; local ones must exist."""
    if not value:
        return None
    try:
        FileSystems.get_filesystem(value)
    except ValueError as e:
        return f"{value!r}: {e}"
    if "://" not in value and not os.path.isdir(value):
        return f"{value!r} is not a folder"
    return None


def background(value: str) -> Tuple[int, int, int]:
    """``R,G,B`` as a tuple of three values 0-255."""
    try:
        parts = tuple(int(p) for p in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 3 or not all(0 <= p <= 255 for p in parts):
        raise ValueError(f"background must be R,G,B with values 0-255, got {value!r}")
    return parts


def _background_problem(value) -> Optional[str]:
    try:
        background(value)
    except ValueError as e:
        return str(e)
    return None


def steps_problem(value: Optional[str]) -> Optional[str]:
    if value is None or value.strip() in ("", "all"):
        return None
    steps = [s.strip() for s in value.split(",") if s.strip()]
    for s in steps:
        if s not in STEPS:
            return f"unknown step {s!r}; choose from {','.join(STEPS)}"
    if len(set(steps)) != len(steps):
        return f"a step is listed twice in {value!r}"
    return None


def languages_problem(value: Optional[str]) -> Optional[str]:
    if not value:
        return None
    for label in value.split(","):
        label = label.strip()
        if not (2 <= len(label) <= 3 and label.isascii() and label.isalpha() and label.islower()):
            return f"{label!r} is not a language label (two or three lowercase letters, e.g. en)"
    return None


def parse_languages(value: Optional[str]) -> Tuple[str, ...]:
    """``--languages`` as a sorted tuple of labels (empty: every language)."""
    problem = languages_problem(value)
    if problem:
        raise OptionError(f"--languages: {problem}")
    return tuple(sorted({s.strip() for s in (value or "").split(",") if s.strip()}))


def parse_steps(value: Optional[str]) -> List[str]:
    """``--steps`` as a list in the canonical order (default: every step)."""
    problem = steps_problem(value)
    if problem:
        raise OptionError(f"--steps: {problem}")
    if value is None or value.strip() in ("", "all"):
        return list(STEPS)
    listed = {s.strip() for s in value.split(",")}
    return [s for s in STEPS if s in listed]  # steps always run in the canonical order


# --------------------------------------------------------------------------
# Declarations


@dataclasses.dataclass(frozen=True)
class Flag:
    """One command-line flag, which is also one Flex Template parameter."""

    name: str
    type: Callable[[str], Any] = str  # str, int, float or boolean
    default: Any = None
    help: Optional[str] = None
    choices: Tuple[str, ...] = ()
    repeated: bool = False  # given once per value (--input)
    required: bool = False  # a template parameter that must be set
    check: Optional[Check] = None  # what the value must satisfy, on its own
    regex: Optional[str] = None  # template validation; default: from the type
    regex_help: str = ""  # what the regex allows, added to the template's help text

    @property
    def template_regex(self) -> str:
        if self.regex:
            return self.regex
        if self.type is boolean:
            return BOOL
        if self.choices:
            return "^(" + "|".join(self.choices) + ")$"
        if self.type is int:
            return INT
        if self.type is float:
            return FRACTION
        return TEXT

    def add_to(self, group) -> None:
        kwargs: Dict[str, Any] = {"default": self.default, "help": self.help}
        if self.repeated:
            kwargs["action"] = "append"
        elif self.type is boolean:
            kwargs.update(type=boolean, nargs="?", const=True)
        elif self.type is not str:
            kwargs["type"] = self.type
        if self.choices:
            kwargs["choices"] = list(self.choices)
        group.add_argument(f"--{self.name}", **kwargs)


@dataclasses.dataclass(frozen=True)
class Group:
    """Flags of one concern: one argument group in ``--help``."""

    title: str
    flags: Tuple[Flag, ...]


OUTPUT = (
    Group("input and output", (
        Flag("input", repeated=True, required=True, check=lambda v: None if v else "at least one "
             "input glob is required",
             help="Input glob (local or any Beam filesystem); repeat for several, or separate them "
             "with commas.",
             regex=GS_PATHS, regex_help="One or more gs:// globs, separated by commas."),
        Flag("output_dir", required=True, check=lambda v: None if v else "required",
             help="Output directory; {date} or {datetime} in it become the launch time (UTC), for "
             "scheduled runs.",
             regex=r"^gs://[^\n\r,]+$"),
    )),
    Group("splits and shards", (
        Flag("validation_fraction", float, 0.05, check=FRACTION_BELOW_1,
             help="Share of records (by a hash of the id) in the validation split.",
             regex=r"^(0(\.[0-9]+)?|\.[0-9]+)$", regex_help="0 to just under 1."),
        Flag("num_shards", int, 0, check=NOT_NEGATIVE,
             help="Shards per split; 0 = one per --target_shard_mb of data."),
        Flag("target_shard_mb", int, 128, check=POSITIVE,
             help="Target shard size when --num_shards is 0."),
        Flag("output_format", default="tfrecord",
             choices=("tfrecord", "parquet", "jsonl", "webdataset"),
             help="Shard format: tfrecord (tf.train.Example; the trainer reads it), parquet "
             "(Hugging Face datasets), jsonl, or webdataset (tar); same records, names and "
             "manifest."),
    )),
    Group("run", (
        Flag("max_dead_letter_fraction", float, 0.1, check=in_range(0.0, 1.0),
             help="Fail the run when more than this share of input records is broken."),
        Flag("report", boolean, True,
             help="Write report.html beside stats.json at the end of the run (--report=false: skip)."),
        Flag("dataset_version", help="Version label in manifest.json (default: derived from the "
             "content).", regex=r"^[A-Za-z0-9._-]{1,64}$"),
        Flag("dead_letter_raw", boolean, False,
             help="Keep raw bytes in the dead letter's raw_excerpt and detail (default: PII "
             "scrubbed like samples; ids are never scrubbed)."),
        Flag("duplicate_ids", default="keep", choices=("keep", "dead_letter"),
             help="Records sharing an input id: keep all (the 2nd, 3rd, ... written as ID#dup1, "
             "ID#dup2, ...) or send the extra ones to the dead letter."),
        Flag("allow_empty", boolean, False,
             help="Complete a run that writes no record (default: such a run fails, exit 1)."),
        Flag("spill", default="auto", choices=("auto", "always", "never"),
             help="On a local engine, write the records that wait in a shuffle to --spill_dir "
             "and shuffle references, so memory stays bounded (auto: from 64 MiB of input)."),
        Flag("spill_dir", help="Where a local run spills (a fresh directory inside, removed "
             "at the end; default: the system's temporary directory)."),
        Flag("spill_compression", default="auto", choices=("auto", "zstd", "none"),
             help="Compress what a local run spills (auto: only where the spill disk has less "
             "than 8 times the input free, or the folder is in memory)."),
        Flag("wait_until_finish", boolean, True,
             help="Wait for the job and print its summary (--wait_until_finish=false: submit and "
             "exit; Flex Template launches never wait)."),
    )),
)

TEXT_STEPS = (
    Group("steps", (
        Flag("steps", check=steps_problem,
             help="Comma-separated steps among clean,lang,filter,dedup,pii,tokenize (default: all "
             "six, in that order).",
             regex=rf"^{_STEP}(,{_STEP}){{0,5}}$"),
    )),
    Group("language", (
        Flag("languages", check=languages_problem,
             help="Comma-separated language labels to keep, as lid.176 names them (ISO 639-1 "
             "where one exists: en,de,zh...); default: every language.",
             regex=r"^[a-z]{2,3}(,[a-z]{2,3})*$", regex_help="e.g. en,de,fr."),
        Flag("language_threshold", float, 0.65, check=in_range(0.0, 1.0),
             help="Drop documents whose language score (lid.176's probability) is below this "
             "(filtered.language_score)."),
    )),
    Group("tokenizer", (
        Flag("tokenizer_model", help="Reuse this SentencePiece model instead of training one "
             "(hf:PATH/tokenizer.json: a Hugging Face tokenizer).",
             regex=r"^(hf:)?(gs://|/)?[^\n]*$"),
        Flag("tokenizer", help="hf:PATH/tokenizer.json: encode with this Hugging Face tokenizer "
             "(byte-level BPE as GPT-2 and Llama, WordPiece as BERT); a plain path: a "
             "SentencePiece model. Same as --tokenizer_model.",
             regex=r"^(hf:)?(gs://|/)?[^\n]*$"),
        Flag("tokenizer_type", default="sentencepiece",
             choices=("sentencepiece", "bpe", "wordpiece", "unigram"),
             help="Library and model trained in the run: sentencepiece (its --spm_model_type), "
             "or Hugging Face tokenizers' byte-level bpe, wordpiece or unigram."),
        Flag("vocab_size", int, 8000,
             help="Vocabulary size of the SentencePiece model trained in the run.",
             regex=VOCAB_SIZE, regex_help="262 to 9,999,999."),
        Flag("spm_model_type", default="unigram", check=one_of("unigram", "bpe", "char", "word"),
             help="SentencePiece model type: unigram, bpe, char or word."),
        Flag("spm_sample_docs", int, 20000, check=POSITIVE,
             help="Documents in the deterministic tokenizer training sample."),
        Flag("no_eos", boolean, False, help="Do not append the eos id to each document's input_ids."),
    )),
    Group("reader", (
        Flag("text_field", default="text", help="JSONL/Parquet text field.", regex=FIELD_NAME),
        Flag("id_field", default="id", help="JSONL/Parquet id field.", regex=FIELD_NAME),
        Flag("max_doc_bytes", int, 1 << 20, check=POSITIVE,
             help="Documents larger than this go to the dead letter."),
        Flag("read_chunk_mb", int, 16, check=POSITIVE,
             help="Plain JSONL files are read in byte ranges of this size."),
        Flag("max_file_bytes", int, 64 << 30, check=POSITIVE,
             help="Read at most this many (decompressed) bytes per file; the rest is one "
             "dead-letter record (file_too_large).",
             regex=r"^[1-9][0-9]{0,15}$", regex_help="Bytes, 1 to 10^16."),
        Flag("max_decompression_ratio", float, 100.0, check=in_range(1),
             help="Stop a compressed file inflating more than this many times (checked after 16 "
             "MiB; decompression_bomb).",
             regex=r"^[1-9][0-9]{0,5}(\.[0-9]+)?$", regex_help="1 or more."),
        Flag("max_dead_per_file", int, 1000, check=POSITIVE,
             help="Stop reading a file after this many broken records when more than half its "
             "records are broken (too_many_broken_records)."),
    )),
    Group("clean", (
        Flag("html", default="auto", choices=("auto", "always", "never"),
             help="Treat text as HTML: auto (content type or sniffing), always, never."),
        Flag("keep_boilerplate", boolean, False,
             help="Extract all visible HTML text instead of the main content."),
    )),
    Group("filter", (
        Flag("filter_config",
             help="JSON object (or path to a JSON file) overriding FilterConfig fields, e.g. "
             "'{\"c4_filter_curly_bracket\": false}'.",
             regex=r"^(\{.*\}|gs://[^\n\r]+)$"),
        Flag("min_chars", int, help="Drop documents shorter than this (characters, after cleaning)."),
        Flag("max_chars", int, help="Drop documents longer than this (characters, after cleaning)."),
        Flag("license_allow", default=",".join(DEFAULT_LICENSES),
             help="Licence families kept when a record has a licence field.",
             regex=r"^[A-Za-z0-9 ._-]+(,[A-Za-z0-9 ._-]+)*$"),
        Flag("license_missing", default="keep", choices=("keep", "drop"),
             help="What to do with records that carry no licence."),
        Flag("no_license_filter", boolean, False),
        Flag("blocklist_file", check=existing_file,
             help="Word list (one word or phrase a line) for the content filter; default: a small "
             "built-in list.",
             regex=GS_PATH),
        Flag("blocklist_threshold", float, 0.01, check=FRACTION_BELOW_1,
             help="Drop a document when blocked words exceed this share of its words."),
        Flag("no_blocklist", boolean, False),
    )),
    Group("pii", (
        Flag("pii_mode", default="tag", choices=("tag", "mask", "pseudonym"),
             help="Replace PII by <KIND>, by --pii_mask, or by a salted pseudonym."),
        Flag("pii_mask", default="[REDACTED]", regex=r"^[^\n\r]{1,64}$"),
        Flag("pii_salt_env", default="BEAMTRAIN_PII_SALT",
             help="Environment variable holding the pseudonym salt (never a flag: it would land "
             "in manifest.json and shell history).",
             regex=ENV_NAME),
        Flag("pii_kinds", default=",".join(PII_KINDS),
             regex=rf"^{_PII_KIND}(,{_PII_KIND}){{0,{len(PII_KINDS) - 1}}}$"),
        Flag("pii_phone_regions", default="US,GB",
             help="Countries whose national phone formats are recognised.",
             regex=r"^[A-Z]{2}(,[A-Z]{2})*$"),
        Flag("pii_drop_above", int, 0, check=NOT_NEGATIVE,
             help="Drop documents with more than this many findings (0: scrub all)."),
    )),
    Group("near-duplicates", (
        Flag("no_near_dedup", boolean, False,
             help="dedup step: exact duplicates only, no MinHash LSH."),
        Flag("near_dup_threshold", float, 0.8, check=in_range(0.0, 1.0, True, True),
             help="Shingle Jaccard at or above which documents are near-duplicates.",
             regex=OPEN_FRACTION, regex_help="Strictly between 0 and 1."),
        Flag("minhash_num_perm", int, 128, check=in_range(2),
             regex=r"^([2-9]|[1-9][0-9]{1,3})$", regex_help="2 to 9,999."),
        Flag("minhash_seed", int, 1),
        Flag("minhash_ngram", int, 5, check=in_range(1), help="Words per shingle."),
        Flag("minhash_char_ngram", int, 0, check=NOT_NEGATIVE,
             help="Shingle by this many characters instead of words (no-space scripts)."),
        Flag("lsh_bands", int, 0, help="LSH bands (0: from the threshold)."),
        Flag("lsh_rows", int, 0, help="LSH rows per band (0: from the threshold)."),
        Flag("near_dup_verify", default="estimate", choices=("estimate", "exact", "none"),
             help="Check LSH candidates by estimated or exact Jaccard before they count."),
        Flag("near_dup_max_rounds", int, 10, check=in_range(1),
             help="Connected-components rounds (large-star + small-star each)."),
        Flag("near_dup_clusters", boolean, False,
             help="Write cluster membership (id, cluster_id, cluster_size) to "
             "DIR/near_dup_clusters/."),
    )),
)

IMAGE_STEPS = (
    Group("images", (
        Flag("labels_from_dirs", boolean, True,
             help="Label each image with its parent folder's name (ImageNet layout)."),
        Flag("image_size", int, 256, check=in_range(8, 8192), help="Shorter side after resizing.",
             regex=r"^([89]|[1-9][0-9]{1,3})$", regex_help="8 to 9,999."),
        Flag("image_root", check=folder,
             help="Captions tables: image paths must lie inside this folder (default: the table's "
             "own folder); others are dead-lettered unread.",
             regex=GS_PATH),
        Flag("resize_mode", default="crop", choices=("crop", "pad", "none"),
             help="crop: centre crop to a square; pad: pad to a square; none: keep aspect."),
        Flag("jpeg_quality", int, 90, check=in_range(1, 100),
             regex=r"^([1-9]|[1-9][0-9]|100)$", regex_help="1 to 100."),
        Flag("background", default="255,255,255", check=_background_problem,
             help="R,G,B colour transparent images are composited on.",
             regex=r"^[0-9]{1,3},[0-9]{1,3},[0-9]{1,3}$"),
    )),
    Group("image checks", (
        Flag("min_side", int, 32, check=in_range(1)),
        Flag("max_side", int, 20000),
        Flag("max_aspect", float, 5.0, check=in_range(1.0),
             help="Largest long-side / short-side ratio kept.", regex=NUMBER),
        Flag("min_std", float, 3.0, help="Images whose grey levels vary less than this are blank.",
             regex=NUMBER),
        Flag("min_file_bytes", int, 0),
        Flag("max_pixels", int, 50_000_000, check=in_range(1),
             help="Larger images are refused before decoding (decompression bombs)."),
        Flag("max_file_mb", int, 64, check=in_range(1)),
    )),
    Group("image duplicates", (
        Flag("near_dup_hamming", int, check=in_range(-1, 7),
             help="Near-duplicate images: dHash Hamming distance up to this (0-7); -1 turns it "
             "off. Default: 6 for images, off for image-caption pairs (several captions of one "
             "image are not duplicates).",
             regex=r"^(-1|[0-7])$", regex_help="-1 (off) or 0 to 7."),
        Flag("no_dedup", boolean, False),
    )),
)

CAPTION_STEPS = (
    Group("captions", (
        Flag("caption_min_chars", int, 3),
        Flag("caption_max_chars", int, 2000),
        Flag("caption_blocklist_file", check=existing_file, regex=GS_PATH),
        Flag("caption_blocklist_threshold", float, 0.2, check=FRACTION_BELOW_1,
             help="Share of blocked words above which a caption's pair is dropped."),
        Flag("caption_pii_mode", default="tag", choices=("tag", "mask", "pseudonym")),
        Flag("caption_pii_salt_env", default="BEAMTRAIN_PII_SALT", regex=ENV_NAME),
        Flag("caption_tokenizer_model", check=existing_file, regex=GS_PATH),
        Flag("caption_vocab_size", int, 2000, regex=VOCAB_SIZE, regex_help="262 to 9,999,999."),
    )),
)


AUDIO_STEPS = (
    Group("audio", (
        Flag("sample_rate", int, 16000, check=in_range(1000, 384000),
             help="Output sample rate (Hz); every clip is mixed down to mono.",
             regex=r"^[1-9][0-9]{3,5}$", regex_help="1000 to 384000."),
        Flag("audio_format", default="flac", choices=("flac", "wav"),
             help="Encoding of audio/encoded: 16-bit PCM FLAC or WAV."),
        Flag("audio_root", check=folder,
             help="Transcript tables and manifests: audio paths must lie inside this folder "
             "(default: the table's own folder); others are dead-lettered unread.",
             regex=GS_PATH),
        Flag("loudness_lufs", float, -23.0,
             help="EBU R128 integrated loudness target (LUFS); 0 keeps the level.",
             regex=r"^-?[0-9]+(\.[0-9]+)?$"),
        Flag("no_trim", boolean, False, help="Keep leading and trailing silence."),
    )),
    Group("audio checks", (
        Flag("min_seconds", float, 0.5, check=in_range(0.01), regex=NUMBER),
        Flag("max_seconds", float, 30.0, check=in_range(0.1), regex=NUMBER,
             help="Longer clips are split at silences into segments no longer than this "
             "(--no_split: filtered as too_long)."),
        Flag("no_split", boolean, False),
        Flag("max_input_seconds", float, 2 * 3600.0, check=in_range(1.0), regex=NUMBER,
             help="Files whose header claims more are refused before decoding."),
        Flag("max_channels", int, 8, check=in_range(1, 255)),
        Flag("silence_db", float, -50.0, help="dBFS below which audio is silence.",
             regex=r"^-[0-9]+(\.[0-9]+)?$"),
        Flag("max_clipped_fraction", float, 0.01, check=FRACTION_BELOW_1,
             help="Share of samples at full scale above which a clip is filtered (clipping)."),
        Flag("max_audio_file_mb", int, 256, check=in_range(1)),
    )),
    Group("audio duplicates", (
        Flag("audio_near_dup_hamming", int, 15, check=in_range(-1, 15),
             help="Near-duplicate clips: spectral-hash Hamming distance up to this (0-15, of "
             "128 bits); -1 turns it off.",
             regex=r"^(-1|[0-9]|1[0-5])$", regex_help="-1 (off) or 0 to 15."),
        Flag("no_audio_dedup", boolean, False),
    )),
)


def _declared_once(*families: Sequence[Group]) -> None:
    seen: Dict[str, Flag] = {}
    for groups in families:
        for group in groups:
            for flag in group.flags:
                if seen.setdefault(flag.name, flag) is not flag:
                    raise TypeError(f"--{flag.name} is declared twice")


_declared_once(OUTPUT, TEXT_STEPS, IMAGE_STEPS, CAPTION_STEPS, AUDIO_STEPS)


def add_groups(parser, groups: Sequence[Group]) -> None:
    """Add ``groups`` to ``parser``, one argument group each; flags it has already pass.

    The one place where a flag may be added to a parser twice (see the module
    docstring): Beam's parser of every options class gets the output flags once
    per pipeline class.
    """
    for group in groups:
        arguments = parser.add_argument_group(group.title)
        for flag in group.flags:
            try:
                flag.add_to(arguments)
            except argparse.ArgumentError as e:
                if "conflicting option string" not in str(e):
                    raise


# --------------------------------------------------------------------------
# The options classes: direct PipelineOptions subclasses (Beam asks only those for flags)


class OutputOptions(PipelineOptions):
    """The flags every pipeline has: inputs, output, splits and shards, the run's policy."""

    GROUPS = OUTPUT

    @classmethod
    def _add_argparse_args(cls, parser):
        add_groups(parser, cls.GROUPS)


class TextPipelineOptions(PipelineOptions):
    """``python -m beam_pipelines.text``: the output flags and the text steps'."""

    GROUPS = OUTPUT + TEXT_STEPS

    @classmethod
    def _add_argparse_args(cls, parser):
        add_groups(parser, cls.GROUPS)


class ImagePipelineOptions(PipelineOptions):
    """``python -m beam_pipelines.images``: the output flags and the image steps'."""

    GROUPS = OUTPUT + IMAGE_STEPS

    @classmethod
    def _add_argparse_args(cls, parser):
        add_groups(parser, cls.GROUPS)


class MultimodalPipelineOptions(PipelineOptions):
    """``python -m beam_pipelines.multimodal``: the image pipeline's flags and the captions'."""

    GROUPS = OUTPUT + IMAGE_STEPS + CAPTION_STEPS

    @classmethod
    def _add_argparse_args(cls, parser):
        add_groups(parser, cls.GROUPS)


class AudioPipelineOptions(PipelineOptions):
    """``python -m beam_pipelines.audio``: the output flags, the audio steps' and (for the
    transcripts) the captions'."""

    GROUPS = OUTPUT + AUDIO_STEPS + CAPTION_STEPS

    @classmethod
    def _add_argparse_args(cls, parser):
        add_groups(parser, cls.GROUPS)


# pipeline (module of beam_pipelines, template folder) -> its options
PIPELINE_OPTIONS = {"text": TextPipelineOptions, "images": ImagePipelineOptions,
                    "multimodal": MultimodalPipelineOptions, "audio": AudioPipelineOptions}


def flags_of(options_class) -> List[Flag]:
    """Every flag of an options class, in declaration order."""
    return [flag for group in options_class.GROUPS for flag in group.flags]


def check_values(options: PipelineOptions, options_class) -> None:
    """Each flag's own check, in declaration order; the first failure raises naming the flag."""
    view = options.view_as(options_class)
    for flag in flags_of(options_class):
        if flag.check is not None:
            problem = flag.check(getattr(view, flag.name))
            if problem:
                raise OptionError(f"--{flag.name}: {problem}")
