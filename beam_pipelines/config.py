"""One frozen, typed configuration per pipeline, built once from its options.

:func:`text_config`, :func:`image_config` and :func:`pair_config` check every
flag (each flag's own check, then the checks that relate several flags; an
error names the flag and exits 2 in one line) and return a :class:`TextConfig`,
:class:`ImageRunConfig` or :class:`PairRunConfig`. The pipeline gets it whole,
and ``manifest.json`` stores ``dataclasses.asdict`` of it as its ``config``.

The fields mirror that manifest layout. Stage configs are reused where their
``asdict`` is exactly that layout (:class:`~transforms.write.shards.WriterConfig`,
:class:`~transforms.text.filters.FilterConfig`,
:class:`~transforms.text.content.LicenseConfig`); elsewhere a small settings
class of the pipeline's own says what the run was given and builds the stage
config from it (``stage()``): the salt of PII pseudonyms, for one, is read from
its environment variable then and never stored.
"""

from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Dict, Mapping, Optional, Tuple

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines import safety
from beam_pipelines.options import (ImagePipelineOptions, MultimodalPipelineOptions, OptionError,
                                    TextPipelineOptions, background, check_values, parse_languages,
                                    parse_steps)
from transforms.dedup.minhash import MinHashConfig
from transforms.dedup.near import NearDedupConfig
from transforms.image.process import ImageConfig
from transforms.read.corpus import ReaderConfig
from transforms.text.clean import CleanConfig
from transforms.text.content import DEFAULT_BLOCKLIST, BlocklistConfig, LicenseConfig, load_word_list
from transforms.text.filters import FilterConfig
from transforms.text.language import LanguageConfig
from transforms.text.pii import KINDS as PII_KINDS
from transforms.text.pii import PiiConfig
from transforms.text.tokenize import MIN_VOCAB_SIZE, TokenizerConfig
from transforms.write.finalize import OutputSpec
from transforms.write.shards import WriterConfig

__all__ = ["RunConfig", "TextConfig", "ImageRunConfig", "PairRunConfig", "text_config",
           "image_config", "pair_config"]


def _salt(mode: str, env: str) -> str:
    return os.environ.get(env, "") if mode == "pseudonym" else ""


# --------------------------------------------------------------------------
# What every pipeline has


@dataclasses.dataclass(frozen=True)
class RunConfig:
    """The settings every pipeline shares: inputs, output, shards, the run's policy."""

    inputs: Tuple[str, ...]
    output_dir: str
    writer: WriterConfig
    max_dead_letter_fraction: float
    dead_letter_raw: bool
    allow_empty: bool
    report: bool
    dataset_version: Optional[str]

    def output_spec(self, code_version: Mapping[str, Any]) -> OutputSpec:
        """What the end of the pipeline needs; the manifest's ``config`` is this whole config."""
        return OutputSpec(output_dir=self.output_dir, writer=self.writer,
                          max_dead_letter_fraction=self.max_dead_letter_fraction,
                          allow_empty=self.allow_empty, dead_letter_raw=self.dead_letter_raw,
                          dataset_version=self.dataset_version,
                          config=dataclasses.asdict(self), code_version=code_version)


def _run_settings(options: PipelineOptions, view) -> Dict[str, Any]:
    """The RunConfig fields, from flags each already checked.

    Expands ``{date}``/``{datetime}`` in --output_dir and checks every path has a
    filesystem (cloud paths on Dataflow). Listing the globs (every one must match
    a file; inputs and output must not overlap) is left to the start of the run,
    so that building a config touches no filesystem.
    """
    output_dir = safety.resolve_output_dir(view.output_dir)
    inputs = tuple(safety.split_inputs(view.input))
    safety.check_paths(inputs, output_dir, options)
    return {
        "inputs": inputs, "output_dir": output_dir,
        "writer": WriterConfig(validation_fraction=view.validation_fraction,
                               num_shards=view.num_shards,
                               target_shard_bytes=view.target_shard_mb << 20,
                               duplicate_ids=view.duplicate_ids,
                               output_format=view.output_format),
        "max_dead_letter_fraction": view.max_dead_letter_fraction,
        "dead_letter_raw": bool(view.dead_letter_raw), "allow_empty": bool(view.allow_empty),
        "report": bool(view.report), "dataset_version": view.dataset_version,
    }


# --------------------------------------------------------------------------
# Text


@dataclasses.dataclass(frozen=True)
class ReaderSettings:
    text_field: str
    id_field: str
    max_doc_bytes: int
    chunk_bytes: int
    max_file_bytes: int
    max_decompression_ratio: float
    max_dead_per_file: int

    def stage(self) -> ReaderConfig:
        return ReaderConfig(**dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class CleanSettings:
    html: str
    main_content: bool

    def stage(self) -> CleanConfig:
        return CleanConfig(html=self.html, main_content=self.main_content)


@dataclasses.dataclass(frozen=True)
class TokenizerSettings:
    model: Optional[str]  # reuse this model (hf:PATH: a tokenizer.json); None: train one
    vocab_size: int
    model_type: str
    sample_docs: int
    add_eos: bool
    hf_type: Optional[str] = None  # train a Hugging Face tokenizer of this type instead

    def stage(self) -> TokenizerConfig:
        return TokenizerConfig(vocab_size=self.vocab_size, model_type=self.model_type,
                               sample_docs=self.sample_docs, add_eos=self.add_eos,
                               hf_type=self.hf_type)


@dataclasses.dataclass(frozen=True)
class BlocklistSettings:
    file: Optional[str]  # None: the built-in word list
    threshold: float

    def stage(self) -> BlocklistConfig:
        words = load_word_list(self.file) if self.file else DEFAULT_BLOCKLIST
        return BlocklistConfig(words=words, threshold=self.threshold)


@dataclasses.dataclass(frozen=True)
class PiiSettings:
    kinds: Tuple[str, ...]
    mode: str
    mask: str
    salt_env: str  # the pseudonym salt is read from here, never stored
    phone_regions: Tuple[str, ...]
    drop_above: int

    def stage(self) -> PiiConfig:
        return PiiConfig(kinds=self.kinds, mode=self.mode, mask=self.mask,
                         salt=_salt(self.mode, self.salt_env), phone_regions=self.phone_regions)


@dataclasses.dataclass(frozen=True)
class NearDedupSettings:
    threshold: float
    num_perm: int
    seed: int
    ngram: int
    char_ngram: int
    bands: int  # resolved: never 0
    rows: int
    verify: str
    verify_threshold: float  # resolved
    max_rounds: int
    write_clusters: bool

    def stage(self) -> NearDedupConfig:
        return NearDedupConfig(
            minhash=MinHashConfig(num_perm=self.num_perm, seed=self.seed, ngram=self.ngram,
                                  char_ngram=self.char_ngram, threshold=self.threshold,
                                  bands=self.bands, rows=self.rows),
            verify=self.verify, verify_threshold=self.verify_threshold, max_rounds=self.max_rounds)


@dataclasses.dataclass(frozen=True)
class TextConfig(RunConfig):
    """``python -m beam_pipelines.text``: which steps run, and how."""

    steps: Tuple[str, ...]
    reader: ReaderSettings
    clean: CleanSettings
    language: LanguageConfig
    filter: FilterConfig
    tokenizer: TokenizerSettings
    license: Optional[LicenseConfig]  # None: --no_license_filter
    blocklist: Optional[BlocklistSettings]  # None: --no_blocklist
    pii: PiiSettings
    near_dedup: Optional[NearDedupSettings]  # None: --no_near_dedup


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


def _near_dedup(o) -> Optional[NearDedupSettings]:
    try:
        near = NearDedupConfig(
            minhash=MinHashConfig(num_perm=o.minhash_num_perm, seed=o.minhash_seed,
                                  ngram=o.minhash_ngram, char_ngram=o.minhash_char_ngram,
                                  threshold=o.near_dup_threshold, bands=o.lsh_bands,
                                  rows=o.lsh_rows),
            verify=o.near_dup_verify, max_rounds=o.near_dup_max_rounds)
        bands, rows = near.lsh_params()
    except ValueError as e:
        raise OptionError(f"--near_dup_* / --minhash_* / --lsh_*: {e}") from e
    if o.no_near_dedup:
        return None
    return NearDedupSettings(
        threshold=o.near_dup_threshold, num_perm=o.minhash_num_perm, seed=o.minhash_seed,
        ngram=o.minhash_ngram, char_ngram=o.minhash_char_ngram, bands=bands, rows=rows,
        verify=o.near_dup_verify, verify_threshold=near.accept_threshold(),
        max_rounds=o.near_dup_max_rounds, write_clusters=bool(o.near_dup_clusters))


def _pii(o) -> PiiSettings:
    pii = PiiSettings(
        kinds=tuple(k.strip().upper() for k in o.pii_kinds.split(",") if k.strip()),
        mode=o.pii_mode, mask=o.pii_mask, salt_env=o.pii_salt_env,
        phone_regions=tuple(r.strip().upper() for r in o.pii_phone_regions.split(",")),
        drop_above=o.pii_drop_above)
    try:
        pii.stage()
    except ValueError as e:
        raise OptionError(f"--pii_*: {e} (the salt comes from ${o.pii_salt_env})") from e
    return pii


def _filter(o) -> FilterConfig:
    overrides = _load_json_arg("filter_config", o.filter_config)
    if o.min_chars is not None:
        overrides["min_chars"] = o.min_chars
    if o.max_chars is not None:
        overrides["max_chars"] = o.max_chars
    try:
        return FilterConfig.from_dict(overrides)
    except (TypeError, ValueError) as e:
        raise OptionError(f"--filter_config: {e}") from e


def text_config(options: PipelineOptions) -> TextConfig:
    """The text pipeline's configuration; raises :class:`OptionError` naming a bad flag."""
    check_values(options, TextPipelineOptions)
    o = options.view_as(TextPipelineOptions)
    run = _run_settings(options, o)
    steps = tuple(parse_steps(o.steps))
    tokenize = "tokenize" in steps
    if o.tokenizer and o.tokenizer_model and o.tokenizer != o.tokenizer_model:
        raise OptionError("--tokenizer and --tokenizer_model name different files; give one")
    model = o.tokenizer or o.tokenizer_model
    if tokenize and not model and o.vocab_size < MIN_VOCAB_SIZE:
        raise OptionError(f"--vocab_size: must be at least {MIN_VOCAB_SIZE} (SentencePiece reserves "
                          f"4 special ids and 256 byte-fallback pieces), got {o.vocab_size}")
    if tokenize and model:
        flag = "--tokenizer" if o.tokenizer else "--tokenizer_model"
        path = model[3:] if model.startswith("hf:") else model
        if not FileSystems.exists(path):
            raise OptionError(f"{flag}: no such file {path!r}")
        if model.startswith("hf:"):
            from transforms.text.hf_tokenizer import check_tokenizer_json

            try:
                with FileSystems.open(path) as f:
                    check_tokenizer_json(f.read())
            except ValueError as e:
                raise OptionError(f"{flag}: {path}: {e}") from None
    if model and o.tokenizer_type != "sentencepiece":
        raise OptionError("--tokenizer_type trains a tokenizer; --tokenizer/--tokenizer_model "
                          "reuses one: give one of them")
    return TextConfig(
        **run,
        steps=steps,
        reader=ReaderSettings(text_field=o.text_field, id_field=o.id_field,
                              max_doc_bytes=o.max_doc_bytes, chunk_bytes=o.read_chunk_mb << 20,
                              max_file_bytes=o.max_file_bytes,
                              max_decompression_ratio=o.max_decompression_ratio,
                              max_dead_per_file=o.max_dead_per_file),
        clean=CleanSettings(html=o.html, main_content=not o.keep_boilerplate),
        language=LanguageConfig(languages=parse_languages(o.languages),
                                threshold=o.language_threshold),
        filter=_filter(o),
        tokenizer=TokenizerSettings(model=model, vocab_size=o.vocab_size,
                                    model_type=o.spm_model_type, sample_docs=o.spm_sample_docs,
                                    add_eos=not o.no_eos,
                                    hf_type=None if o.tokenizer_type == "sentencepiece"
                                    else o.tokenizer_type),
        license=None if o.no_license_filter else LicenseConfig(
            allow=tuple(a.strip() for a in o.license_allow.split(",") if a.strip()),
            missing=o.license_missing),
        blocklist=None if o.no_blocklist else BlocklistSettings(file=o.blocklist_file,
                                                                threshold=o.blocklist_threshold),
        pii=_pii(o),
        near_dedup=_near_dedup(o),
    )


# --------------------------------------------------------------------------
# Images and image-caption pairs


@dataclasses.dataclass(frozen=True)
class ImageSettings:
    max_pixels: int
    min_side: int
    max_side: int
    max_aspect: float
    min_std: float
    min_file_bytes: int
    size: int
    resize: str
    quality: int
    background: Tuple[int, int, int]

    def stage(self) -> ImageConfig:
        return ImageConfig(**dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class ImageRunConfig(RunConfig):
    """``python -m beam_pipelines.images``: image files, validated, deduplicated, resized."""

    labels_from_dirs: bool
    image: ImageSettings
    max_file_bytes: int
    image_root: Optional[str]
    dedup: bool
    near_dup_hamming: int  # -1: no near-duplicate removal
    kind: str = dataclasses.field(default="images", init=False)


@dataclasses.dataclass(frozen=True)
class CaptionSettings:
    min_chars: int
    max_chars: int
    blocklist_file: Optional[str]
    blocklist_threshold: float
    pii_mode: str
    pii_salt_env: str
    tokenizer_model: Optional[str]
    vocab_size: int

    def blocklist(self) -> BlocklistConfig:
        words = load_word_list(self.blocklist_file) if self.blocklist_file else DEFAULT_BLOCKLIST
        return BlocklistConfig(words=words, threshold=self.blocklist_threshold, min_hits=1)

    def filter(self) -> FilterConfig:
        """Length bounds only: the Gopher and C4 rules are for pages, not captions."""
        return FilterConfig(gopher_quality=False, gopher_repetition=False, c4=False,
                            min_chars=self.min_chars, max_chars=self.max_chars)

    def pii(self) -> PiiConfig:
        return PiiConfig(kinds=PII_KINDS, mode=self.pii_mode,
                         salt=_salt(self.pii_mode, self.pii_salt_env))

    def tokenizer(self) -> TokenizerConfig:
        return TokenizerConfig(vocab_size=self.vocab_size, add_eos=True)


@dataclasses.dataclass(frozen=True)
class PairRunConfig(ImageRunConfig):
    """``python -m beam_pipelines.multimodal``: image-caption pairs, captions through text steps."""

    captions: CaptionSettings
    kind: str = dataclasses.field(default="pairs", init=False)


@dataclasses.dataclass(frozen=True)
class AudioRunConfig(RunConfig):
    """``python -m beam_pipelines.audio``: audio files and transcripts, decoded, checked,
    deduplicated, normalised; transcripts through the caption steps."""

    audio: Dict[str, Any]  # transforms.audio.process.AudioConfig's fields
    max_file_bytes: int
    audio_root: Optional[str]
    dedup: bool
    near_dup_hamming: int  # -1: no near-duplicate removal
    captions: CaptionSettings
    kind: str = dataclasses.field(default="audio", init=False)

    def audio_config(self):
        from transforms.audio.process import AudioConfig

        return AudioConfig(**self.audio)


def audio_config(options: PipelineOptions) -> AudioRunConfig:
    """The audio pipeline's configuration; raises :class:`OptionError` naming a bad flag."""
    from beam_pipelines.options import AudioPipelineOptions

    o = options.view_as(AudioPipelineOptions)
    check_values(options, AudioPipelineOptions)
    audio = dict(sample_rate=o.sample_rate, audio_format=o.audio_format,
                 min_seconds=o.min_seconds, max_seconds=o.max_seconds, split_long=not o.no_split,
                 max_input_seconds=o.max_input_seconds, max_channels=o.max_channels,
                 silence_db=o.silence_db, trim=not o.no_trim,
                 loudness_lufs=None if o.loudness_lufs == 0 else o.loudness_lufs,
                 max_clipped_fraction=o.max_clipped_fraction)
    try:
        from transforms.audio.process import AudioConfig

        AudioConfig(**audio)
    except ValueError as e:
        raise OptionError(f"--audio flags: {e}") from e
    captions = _caption_settings(o)
    return AudioRunConfig(**_run_settings(options, o), audio=audio,
                          max_file_bytes=o.max_audio_file_mb << 20,
                          audio_root=o.audio_root or None, dedup=not o.no_audio_dedup,
                          near_dup_hamming=o.audio_near_dup_hamming, captions=captions)


def _image_settings(options: PipelineOptions, view, kind: str) -> Dict[str, Any]:
    check_values(options, type(view))
    near = view.near_dup_hamming
    if near is None:  # several captions of one image are not duplicates
        near = 6 if kind == "images" else -1
    if view.max_side < view.min_side:
        raise OptionError(f"--max_side: must be >= --min_side ({view.min_side}), got {view.max_side}")
    image = ImageSettings(max_pixels=view.max_pixels, min_side=view.min_side,
                          max_side=view.max_side, max_aspect=view.max_aspect,
                          min_std=view.min_std, min_file_bytes=view.min_file_bytes,
                          size=view.image_size, resize=view.resize_mode,
                          quality=view.jpeg_quality, background=background(view.background))
    try:
        image.stage()
    except ValueError as e:
        raise OptionError(f"--image_*: {e}") from e
    return dict(
        _run_settings(options, view),
        labels_from_dirs=bool(view.labels_from_dirs) and kind == "images",
        image=image, max_file_bytes=view.max_file_mb << 20, image_root=view.image_root or None,
        dedup=not view.no_dedup, near_dup_hamming=near)


def image_config(options: PipelineOptions) -> ImageRunConfig:
    """The image pipeline's configuration; raises :class:`OptionError` naming a bad flag."""
    return ImageRunConfig(**_image_settings(options, options.view_as(ImagePipelineOptions),
                                            "images"))


def pair_config(options: PipelineOptions) -> PairRunConfig:
    """The image-caption pipeline's configuration; raises :class:`OptionError` naming a bad flag."""
    o = options.view_as(MultimodalPipelineOptions)
    settings = _image_settings(options, o, "pairs")
    return PairRunConfig(**settings, captions=_caption_settings(o))


def _caption_settings(o) -> CaptionSettings:
    """The caption steps' settings (captions of pairs, transcripts of audio), checked."""
    if o.caption_min_chars < 0 or o.caption_max_chars < o.caption_min_chars:
        raise OptionError("--caption_min_chars / --caption_max_chars: need 0 <= min <= max")
    if not o.caption_tokenizer_model and o.caption_vocab_size < MIN_VOCAB_SIZE:
        raise OptionError(f"--caption_vocab_size: must be at least {MIN_VOCAB_SIZE} (SentencePiece "
                          f"reserves 4 special ids and 256 byte-fallback pieces), got "
                          f"{o.caption_vocab_size}")
    if o.caption_pii_mode == "pseudonym" and not _salt(o.caption_pii_mode, o.caption_pii_salt_env):
        raise OptionError(f"--caption_pii_mode: pseudonyms need a salt in ${o.caption_pii_salt_env}")
    return CaptionSettings(
        min_chars=o.caption_min_chars, max_chars=o.caption_max_chars,
        blocklist_file=o.caption_blocklist_file, blocklist_threshold=o.caption_blocklist_threshold,
        pii_mode=o.caption_pii_mode, pii_salt_env=o.caption_pii_salt_env,
        tokenizer_model=o.caption_tokenizer_model, vocab_size=o.caption_vocab_size)
