"""The audio pipeline: decode with FFmpeg, check, normalise, deduplicate and shard speech and sound.

Inputs (:mod:`transforms.read.audio`): audio files (WAV, FLAC, MP3,
Ogg/Opus, M4A/AAC, and the audio track of MKV/MP4/WebM/MOV), LibriSpeech
``*.trans.txt``, Common Voice ``*.tsv``, NeMo ``*.jsonl`` manifests and
WebDataset tars (audio + ``.txt``/``.json``). Referenced audio must lie inside
``--audio_root`` (default: the table's folder); nothing is fetched.

Each file is decoded through PyAV (FFmpeg in its wheel) within limits read
from its header, checked (broken files dead-lettered, rules filtered, each
with its reason), resampled to ``--sample_rate`` mono, trimmed, split at
silences when longer than ``--max_seconds``, loudness-normalised (EBU R128)
and written as 16-bit FLAC or WAV (:mod:`transforms.audio.process`).
Transcripts go through the caption steps of the image-caption pipeline
(clean, length and blocklist filter, PII scrubbing, a SentencePiece model
trained on them); a clip whose transcript fails is dropped once, with that
reason. Exact duplicates are the same decoded samples (and transcript),
near-duplicates are clips within ``--audio_near_dup_hamming`` bits of the
128-bit spectral hash. Output contract as the other pipelines' (DESIGN.md):
shards of Examples (``audio/encoded``, ``audio/format``, ``audio/sample_rate``,
``audio/num_samples``, ``audio/id``, ``transcript/text``,
``transcript/input_ids``), stats.json with the accounting identity, hours in
and out, duration and sample-rate histograms, manifest.json, dead letter,
report, COMPLETED last.

Local run::

    python -m beam_pipelines.audio --input 'data/sample/audio/librispeech/*/*/*.trans.txt' \\
        --input 'data/sample/audio/nemo/manifest.jsonl' --output_dir /tmp/beamtrain-audio
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

import apache_beam as beam

from beam_pipelines import outputs
from beam_pipelines.config import AudioRunConfig, audio_config
from beam_pipelines.multimodal import caption_steps
from beam_pipelines.options import AudioPipelineOptions
from transforms import accounting
from transforms.audio.steps import AudioExactDedup, AudioNearDedup, ProcessAudio, ToAudioExamples
from transforms.read.audio import ReadAudio
from transforms.text.tokenize import Encode
from transforms.write.finalize import Parts

__all__ = ["AudioPipelineOptions", "build_pipeline", "run"]


def _has_transcript(record: dict, _n: int) -> int:
    return 0 if record.get("text") else 1


def build_pipeline(p: beam.Pipeline, config: AudioRunConfig) -> None:
    """Add the audio pipeline to ``p``."""
    read = p | "Read" >> ReadAudio(list(config.inputs), config.max_file_bytes, config.audio_root)
    parts = Parts(files=read["files"])
    parts.add(read["counts"], read["dead"])

    processed = read["records"] | "Audio" >> ProcessAudio(config.audio_config())
    parts.add(processed[accounting.COUNTS], processed[accounting.DEAD],
              processed[accounting.SAMPLES])

    transcribed, bare = processed.records | "SplitTranscribed" >> beam.Partition(_has_transcript, 2)
    transcribed = caption_steps(p, transcribed, config, parts)
    records = (transcribed, bare) | "AllClips" >> beam.Flatten()

    if config.dedup:
        exact = records | "ExactDedup" >> AudioExactDedup()
        records = exact.records
        parts.add(exact[accounting.COUNTS])
        if config.near_dup_hamming >= 0:
            near = records | "NearDedup" >> AudioNearDedup(config.near_dup_hamming)
            records = near["records"]
            parts.add(near["counts"], samples=near["samples"])

    transcribed, bare = records | "SplitForTokens" >> beam.Partition(_has_transcript, 2)
    encoded = transcribed | "EncodeTranscripts" >> Encode(parts.tokenizer,
                                                          config.captions.tokenizer())
    parts.add(encoded[accounting.COUNTS])
    records = (encoded.records, bare) | "Encoded" >> beam.Flatten()
    outputs.write_outputs(records, ToAudioExamples(config.writer.validation_fraction), parts, config)


def run(argv: Optional[List[str]] = None) -> Optional[Dict[str, Any]]:
    """Parse options, run the pipeline, return stats.json's content (None when only submitted)."""
    return outputs.run(argv, AudioPipelineOptions, audio_config, build_pipeline)


if __name__ == "__main__":
    outputs.main(run)
