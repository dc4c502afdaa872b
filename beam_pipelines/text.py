"""The text pipeline: read, clean, identify the language, filter, dedup, scrub PII, tokenize, write shards.

Every input record is accounted for in ``DIR/stats.json``: written, or counted
with its reason under ``filtered``, ``duplicates`` or ``dead_letter`` (broken
inputs, one JSON line each in ``DIR/dead_letter/``). ``DIR/COMPLETED`` is
written last, only when the run succeeded.

Local run (DirectRunner, pinned to the FnApiRunner so nothing is downloaded)::

    python -m beam_pipelines.text \\
        --input 'data/sample/**' --output_dir /tmp/beamtrain-out \\
        --steps clean,lang,filter,dedup,tokenize --vocab_size 8000

Dataflow::

    python -m beam_pipelines.text \\
        --input 'gs://BUCKET/crawl/*.warc.gz' --output_dir gs://BUCKET/out/v1 \\
        --runner DataflowRunner --project PROJECT --region us-central1 \\
        --temp_location gs://BUCKET/tmp --setup_file ./setup.py
"""

from __future__ import annotations

import json
from typing import Any, Dict, List, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from beam_pipelines import outputs
from beam_pipelines.config import TextConfig, text_config
from beam_pipelines.options import TextPipelineOptions
from transforms import accounting
from transforms.dedup.exact import ExactDedup
from transforms.dedup.near import NearDedup
from transforms.read.corpus import ReadCorpus
from transforms.text.clean import Clean
from transforms.text.language import IdentifyLanguage
from transforms.text.pii_step import ScrubPii
from transforms.text.quality import QualityFilter
from transforms.text.tokenize import Encode, LoadTokenizer, TrainTokenizer
from transforms.write.finalize import Parts
from transforms.write.shards import EncodeExamples

__all__ = ["TextPipelineOptions", "build_pipeline", "run"]


def build_pipeline(p: beam.Pipeline, config: TextConfig) -> None:
    """Add the text pipeline to ``p``: read, the configured steps in order, then the outputs."""
    out = config.output_dir
    read = p | "Read" >> ReadCorpus(list(config.inputs), config.reader.stage())
    records = read["records"]
    parts = Parts(files=read["files"])
    parts.add(read["counts"], read["dead"])

    if "clean" in config.steps:
        cleaned = records | "Clean" >> Clean(config.clean.stage())
        records = cleaned.records
        parts.add(cleaned[accounting.COUNTS], samples=cleaned[accounting.SAMPLES])
    if "lang" in config.steps:
        labelled = records | "Language" >> IdentifyLanguage(config.language)
        records = labelled.records
        parts.add(labelled[accounting.COUNTS], samples=labelled[accounting.SAMPLES])
    if "filter" in config.steps:
        kept = records | "Filter" >> QualityFilter(
            config.filter, config.license,
            config.blocklist.stage() if config.blocklist else None)
        records = kept.records
        parts.add(kept[accounting.COUNTS], samples=kept[accounting.SAMPLES])
    if "dedup" in config.steps:
        deduped = records | "ExactDedup" >> ExactDedup()
        records = deduped.records
        parts.add(deduped[accounting.COUNTS])
        if "tokenize" in config.steps and not config.tokenizer.model:
            # the tokenizer's sample is drawn here, scrubbed as the PII step would scrub it,
            # so that its training runs beside near dedup and PII (transforms.text.tokenize)
            parts.tokenizer = records | "TrainTokenizer" >> TrainTokenizer(
                config.tokenizer.stage(), out,
                pii=config.pii.stage() if "pii" in config.steps else None)
        near = config.near_dedup
        if near:
            removed = records | "NearDedup" >> NearDedup(near.stage())
            records = removed["records"]
            parts.add(removed["counts"], samples=removed["samples"])
            if near.write_clusters:
                parts.extras.append(
                    removed["clusters"]
                    | "ClustersToJson" >> beam.Map(lambda row: json.dumps(row, sort_keys=True))
                    | "WriteClusters" >> beam.io.WriteToText(
                        FileSystems.join(out, "near_dup_clusters", "clusters"),
                        file_name_suffix=".jsonl"))
    if "pii" in config.steps:
        scrubbed = records | "Pii" >> ScrubPii(config.pii.stage(), config.pii.drop_above)
        records = scrubbed.records
        parts.add(scrubbed[accounting.COUNTS], samples=scrubbed[accounting.SAMPLES])
    if "tokenize" in config.steps:
        tokenizer = config.tokenizer
        if tokenizer.model:
            parts.tokenizer = p | "LoadTokenizer" >> LoadTokenizer(tokenizer.model, out)
        elif parts.tokenizer is None:
            parts.tokenizer = records | "TrainTokenizer" >> TrainTokenizer(tokenizer.stage(), out)
        encoded = records | "Tokenize" >> Encode(parts.tokenizer, tokenizer.stage())
        records = encoded.records
        parts.add(encoded[accounting.COUNTS])

    outputs.write_outputs(records, EncodeExamples(config.writer), parts, config)


def run(argv: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Parse options, run the pipeline, return stats.json's content (None when only submitted)."""
    return outputs.run(argv, TextPipelineOptions, text_config, build_pipeline)


if __name__ == "__main__":
    outputs.main(run)
