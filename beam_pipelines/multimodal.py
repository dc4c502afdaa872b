"""The image-caption pipeline: pairs through the text steps and the image steps.

Inputs: COCO captions JSON (images under ``images/`` beside it, or beside
it), TSV or Parquet of (image path, caption) with paths relative to the
table, and WebDataset tar shards (``key.jpg`` + ``key.txt``/``key.json``).
Nothing is downloaded: remote image URLs are dead-lettered.

Each caption goes through the text pipeline's transforms: clean, a caption
filter (length bounds and the word blocklist; the Gopher/C4 rules are for
pages, not captions), PII scrubbing, and tokenization (a SentencePiece model
trained on the captions, or ``--tokenizer_model``). Each image goes through
the image steps. A pair whose image or caption fails is dropped once, with
the first reason. Exact duplicates are pairs with the same image bytes and
caption; near-duplicate image removal is off unless ``--near_dup_hamming`` is
set (several captions of one image are not duplicates).

Local run::

    python -m beam_pipelines.multimodal --input 'data/sample/multimodal/coco/captions.json' \\
        --input 'data/sample/multimodal/webdataset/*.tar' --output_dir /tmp/beamtrain-pairs

Dataflow::

    python -m beam_pipelines.multimodal --input 'gs://BUCKET/laion/*.parquet' \\
        --output_dir gs://BUCKET/datasets/pairs/v1 --runner DataflowRunner --project PROJECT \\
        --region us-central1 --temp_location gs://BUCKET/tmp --setup_file ./setup.py
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Optional

from apache_beam.io.filesystems import FileSystems
from apache_beam.options.pipeline_options import PipelineOptions

from beam_pipelines import images
from beam_pipelines.safety import OptionError
from beam_pipelines.text import execute, main, prepare
from transforms import accounting
from transforms.text.clean import Clean, CleanConfig
from transforms.text.content import DEFAULT_BLOCKLIST, BlocklistConfig, load_word_list
from transforms.text.filters import FilterConfig
from transforms.text.pii import KINDS as PII_KINDS
from transforms.text.pii import PiiConfig
from transforms.text.pii_step import ScrubPii
from transforms.text.quality import QualityFilter
from transforms.text.tokenize import MIN_VOCAB_SIZE, Encode, LoadTokenizer, TokenizerConfig, TrainTokenizer

__all__ = ["MultimodalPipelineOptions", "run"]


class MultimodalPipelineOptions(PipelineOptions):
    """Caption options; the image options come from ImagePipelineOptions (a view of the same argv).

    A direct PipelineOptions subclass, so Beam sees these flags instead of
    discarding them as unparseable.
    """

    @classmethod
    def _add_argparse_args(cls, parser):
        parser.add_argument("--caption_min_chars", type=int, default=3)
        parser.add_argument("--caption_max_chars", type=int, default=2000)
        parser.add_argument("--caption_blocklist_file", default=None)
        parser.add_argument("--caption_blocklist_threshold", type=float, default=0.2,
                            help="Share of blocked words above which a caption's pair is dropped.")
        parser.add_argument("--caption_pii_mode", default="tag", choices=["tag", "mask", "pseudonym"])
        parser.add_argument("--caption_pii_salt_env", default="BEAMTRAIN_PII_SALT")
        parser.add_argument("--caption_tokenizer_model", default=None)
        parser.add_argument("--caption_vocab_size", type=int, default=2000)


def _validate(options) -> Dict[str, Any]:
    opts = options.view_as(images.ImagePipelineOptions)
    mm = options.view_as(MultimodalPipelineOptions)
    config = images.validate(opts, "pairs")
    if mm.caption_min_chars < 0 or mm.caption_max_chars < mm.caption_min_chars:
        raise OptionError("--caption_min_chars / --caption_max_chars: need 0 <= min <= max")
    if not 0.0 <= mm.caption_blocklist_threshold < 1.0:
        raise OptionError("--caption_blocklist_threshold: must be in [0, 1)")
    if not mm.caption_tokenizer_model and mm.caption_vocab_size < MIN_VOCAB_SIZE:
        raise OptionError(f"--caption_vocab_size: must be at least {MIN_VOCAB_SIZE} (SentencePiece "
                          f"reserves 4 special ids and 256 byte-fallback pieces), got "
                          f"{mm.caption_vocab_size}")
    for name in ("caption_blocklist_file", "caption_tokenizer_model"):
        path = getattr(mm, name)
        if path and not FileSystems.exists(path):
            raise OptionError(f"--{name}: no such file {path!r}")
    salt = os.environ.get(mm.caption_pii_salt_env, "") if mm.caption_pii_mode == "pseudonym" else ""
    if mm.caption_pii_mode == "pseudonym" and not salt:
        raise OptionError(f"--caption_pii_mode: pseudonyms need a salt in ${mm.caption_pii_salt_env}")
    config["captions"] = {
        "min_chars": mm.caption_min_chars, "max_chars": mm.caption_max_chars,
        "blocklist_file": mm.caption_blocklist_file,
        "blocklist_threshold": mm.caption_blocklist_threshold,
        "pii_mode": mm.caption_pii_mode, "pii_salt_env": mm.caption_pii_salt_env,
        "tokenizer_model": mm.caption_tokenizer_model, "vocab_size": mm.caption_vocab_size,
    }
    return config


def _caption_steps(config: Dict[str, Any]):
    c = config["captions"]
    out = config["output_dir"]
    tok_config = TokenizerConfig(vocab_size=c["vocab_size"], add_eos=True)

    def steps(p, records, counts):
        cleaned = records | "CaptionClean" >> Clean(CleanConfig(html="never"))
        counts.append(cleaned[accounting.COUNTS])
        words = load_word_list(c["blocklist_file"]) if c["blocklist_file"] else DEFAULT_BLOCKLIST
        filtered = cleaned.records | "CaptionFilter" >> QualityFilter(
            FilterConfig(gopher_quality=False, gopher_repetition=False, c4=False,
                         min_chars=c["min_chars"], max_chars=c["max_chars"]),
            None, BlocklistConfig(words=words, threshold=c["blocklist_threshold"], min_hits=1))
        counts.append(filtered[accounting.COUNTS])
        salt = os.environ.get(c["pii_salt_env"], "") if c["pii_mode"] == "pseudonym" else ""
        scrubbed = filtered.records | "CaptionPii" >> ScrubPii(
            PiiConfig(kinds=PII_KINDS, mode=c["pii_mode"], salt=salt))
        counts.append(scrubbed[accounting.COUNTS])
        if c["tokenizer_model"]:
            tokenizer = p | "LoadCaptionTokenizer" >> LoadTokenizer(c["tokenizer_model"], out)
        else:
            tokenizer = scrubbed.records | "TrainCaptionTokenizer" >> TrainTokenizer(tok_config, out)
        return scrubbed.records, tokenizer

    def encode(records, tokenizer):
        return records | "EncodeCaptions" >> Encode(tokenizer, tok_config)

    return steps, encode


def _build(p, config: Dict[str, Any]) -> None:
    steps, encode = _caption_steps(config)
    images.build_pipeline(p, dict(config, encode_captions=encode), caption_steps=steps)


def run(argv: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Parse options, run the pipeline, return stats.json's content (None when only submitted)."""
    options, config = prepare(argv, [images.ImagePipelineOptions, MultimodalPipelineOptions],
                              _validate)
    wait = options.view_as(images.ImagePipelineOptions).wait_until_finish
    return execute(options, config, _build, wait)


if __name__ == "__main__":
    main(run)
