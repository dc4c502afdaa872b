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

from typing import Any, Dict, List, Optional

import apache_beam as beam

from beam_pipelines import images, outputs
from beam_pipelines.config import PairRunConfig, pair_config
from beam_pipelines.options import MultimodalPipelineOptions
from transforms import accounting
from transforms.read.images import LoadImages
from transforms.text.clean import Clean, CleanConfig
from transforms.text.pii_step import ScrubPii
from transforms.text.quality import QualityFilter
from transforms.text.tokenize import Encode, LoadTokenizer, TrainTokenizer
from transforms.write.finalize import Parts

__all__ = ["MultimodalPipelineOptions", "build_pipeline", "run"]


def caption_steps(p: beam.Pipeline, records: beam.PCollection, config: PairRunConfig,
                  parts: Parts) -> beam.PCollection:
    """Clean, filter and scrub each caption; the caption tokenizer goes into ``parts``."""
    captions = config.captions
    cleaned = records | "CaptionClean" >> Clean(CleanConfig(html="never"))
    parts.add(cleaned[accounting.COUNTS], samples=cleaned[accounting.SAMPLES])
    filtered = cleaned.records | "CaptionFilter" >> QualityFilter(
        captions.filter(), None, captions.blocklist())
    parts.add(filtered[accounting.COUNTS], samples=filtered[accounting.SAMPLES])
    scrubbed = filtered.records | "CaptionPii" >> ScrubPii(captions.pii())
    parts.add(scrubbed[accounting.COUNTS], samples=scrubbed[accounting.SAMPLES])
    if captions.tokenizer_model:
        parts.tokenizer = p | "LoadCaptionTokenizer" >> LoadTokenizer(
            captions.tokenizer_model, config.output_dir)
    else:
        parts.tokenizer = scrubbed.records | "TrainCaptionTokenizer" >> TrainTokenizer(
            captions.tokenizer(), config.output_dir)
    return scrubbed.records


def build_pipeline(p: beam.Pipeline, config: PairRunConfig) -> None:
    """Add the image-caption pipeline to ``p``: captions, images, then both encoded."""
    records, parts = images.read_images(p, config)
    loaded = records | "LoadImages" >> beam.ParDo(
        LoadImages(config.max_file_bytes, image_root=config.image_root)).with_outputs(
        accounting.DEAD, accounting.COUNTS, main="records")
    parts.add(loaded[accounting.COUNTS], loaded[accounting.DEAD])
    records = caption_steps(p, loaded.records, config, parts)
    records = images.image_steps(records, config, parts)
    encoded = records | "EncodeCaptions" >> Encode(parts.tokenizer, config.captions.tokenizer())
    parts.add(encoded[accounting.COUNTS])
    images.write_images(encoded.records, config, parts)


def run(argv: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Parse options, run the pipeline, return stats.json's content (None when only submitted)."""
    return outputs.run(argv, MultimodalPipelineOptions, pair_config, build_pipeline)


if __name__ == "__main__":
    outputs.main(run)
