"""Beam steps of the audio pipeline: decode/check/normalise, exact and near-duplicate removal,
Examples.

* :class:`ProcessAudio` runs :func:`transforms.audio.process.process_audio` on
  each record: broken files go to the dead letter, rule failures are counted
  as filtered, both with their reason; one record per clip comes out (a file
  split at silences gives several, ids ``<id>#1``, ``<id>#2``...; their
  transcript is dropped, since nothing says which words fall in which
  segment, and counted under ``info.transcript_dropped_split``). Each segment
  past the first counts as one more input record (``records_in`` reason
  ``audio_segments``), so the accounting identity holds. Codecs,
  containers, source sample rates and durations are counted for stats.json.
* :class:`AudioExactDedup`: the same decoded samples (and transcript) keep the
  smallest id, whatever container or codec carried them.
* :class:`AudioNearDedup`: near-duplicates by the 128-bit spectral hash: LSH on
  16 bands of 8 bits (two hashes within Hamming distance 15 share a band),
  then the engine text and images use (candidate pairs verified by Hamming
  distance, large-star/small-star components); the survivor is a clip with a
  transcript when the group has one, then the smallest id.
* :class:`ToAudioExamples`: ``audio/encoded``, ``audio/format``,
  ``audio/sample_rate``, ``audio/num_samples``, ``audio/id``, and
  ``transcript/text`` and ``transcript/input_ids`` where there is a transcript.
"""

from __future__ import annotations

import time

import apache_beam as beam

from transforms import accounting
from transforms.accounting import FILTERED, IN, INFO
from transforms.audio.process import AudioConfig, AudioReject, process_audio
from transforms.dedup.components import RemoveNearDuplicates
from transforms.dedup.exact import ExactDedup
from transforms.image.process import HammingAtMost
from transforms.write.shards import encode_example, histogram_bucket, placement_id, split_of

__all__ = ["ProcessAudio", "AudioExactDedup", "AudioNearDedup", "ToAudioExamples", "band_keys",
           "HIST_SECONDS", "HIST_SOURCE_RATE", "AUDIO_KEYS", "BANDS"]

HIST_SECONDS = "hist.audio_seconds_x10"  # clip durations in tenths of a second
HIST_SOURCE_RATE = "hist.audio_source_sample_rate"
SECONDS_IN = "info.audio_seconds_in_x1000"
SECONDS_OUT = "info.audio_seconds_out_x1000"
BANDS = 16  # of 8 bits each: hashes within Hamming distance 15 share one
AUDIO_KEYS = {"audio/encoded": "bytes", "audio/format": "bytes", "audio/sample_rate": "int64",
              "audio/num_samples": "int64", "audio/id": "bytes", "transcript/text": "bytes",
              "transcript/input_ids": "int64"}


class _ProcessDoFn(accounting.CountingDoFn):
    def __init__(self, config: AudioConfig):
        super().__init__()
        self._config = config

    def process(self, record: dict):
        data = record["audio_bytes"]
        start = time.perf_counter()
        start, seconds = record.get("slice") or (0.0, None)
        try:
            decoded, clips = process_audio(data, self._config, start, seconds)
        except AudioReject as e:
            self.time("audio", time.perf_counter() - start)
            if e.dead:
                yield self.dead(accounting.dead_letter_entry(
                    record["source"], record["position"], e.reason, e.message, data[:64],
                    unit="file" if record["position"] == 0 else "record", record_id=record["id"]))
            else:
                self.count(FILTERED, e.reason)
                self.sample(FILTERED, e.reason, dict(
                    {k: v for k, v in record.items() if k != "audio_bytes"},
                    text=record.get("text") or e.message))
            return
        self.time("audio", time.perf_counter() - start)
        seconds_in = decoded.samples.size / self._config.sample_rate
        self.count(INFO, f"codec.{decoded.codec}", metric=False)
        self.count(INFO, f"container.{decoded.container.split(',')[0]}", metric=False)
        self.count(HIST_SOURCE_RATE, str(decoded.source_rate), metric=False)
        self.count(SECONDS_IN.split(".", 1)[0], SECONDS_IN.split(".", 1)[1],
                   int(round(seconds_in * 1000)), metric=False)
        base = {k: v for k, v in record.items() if k not in ("audio_bytes", "slice")}
        if len(clips) > 1 or clips[0].segments > 1:
            self.count(INFO, "audio_split_files", metric=False)
            # each segment past the first is one more record: the identity counts it in
            self.count(IN, "audio_segments", len(clips) - 1)
            if base.get("text"):
                self.count(INFO, "transcript_dropped_split", metric=False)
            base["text"] = ""
        for clip in clips:
            out = dict(base)
            if clip.segment:
                out["id"] = f"{record['id']}#{clip.segment}"
                out["key"] = f"{record['key']}#{clip.segment}"
            out.update(audio=clip.encoded, audio_format=clip.audio_format,
                       sample_rate=clip.sample_rate, num_samples=clip.num_samples,
                       fingerprint=clip.fingerprint,
                       exact_hash=decoded.exact_hash + (f"#{clip.segment}" if clip.segment else ""),
                       seconds=clip.seconds)
            self.count(HIST_SECONDS, str(histogram_bucket(int(round(clip.seconds * 10)))),
                       metric=False)
            yield out


class ProcessAudio(beam.PTransform):
    def __init__(self, config: AudioConfig = AudioConfig()):
        super().__init__()
        self._config = config

    def expand(self, records):
        return records | "DecodeCheckNormalise" >> beam.ParDo(_ProcessDoFn(self._config)).with_outputs(
            accounting.DEAD, accounting.COUNTS, accounting.SAMPLES, main="records")


def audio_key(record: dict) -> str:
    """Exact-duplicate fingerprint: the decoded samples' sha256 and the folded transcript."""
    return record["exact_hash"] + "|" + " ".join(record.get("text", "").lower().split())


class AudioExactDedup(ExactDedup):
    """The same decoded samples (and transcript) -> the smallest id."""

    def __init__(self):
        super().__init__(fingerprint=audio_key)


def band_keys(record: dict, bands: int = BANDS):
    """``(node, [(band, 8 bits of the hash), ...])``: the record's node and a key per band of its fingerprint."""
    h = record["fingerprint"]
    node = transcribed_first(record)
    return node, [(i, (h >> (8 * i)) & 0xFF) for i in range(bands)]


class AudioNearDedup(beam.PTransform):
    """Near-duplicate clips (spectral-hash Hamming distance <= ``max_distance``, at most 15)
    -> survivors. Returns a dict with ``records``, ``counts`` and ``samples``."""

    def __init__(self, max_distance: int = 15, max_rounds: int = 10, max_bucket: int = 64):
        super().__init__()
        if not 0 <= max_distance <= 15:
            raise ValueError("max_distance must be in [0, 15] (16 bands of 8 bits)")
        self._max, self._rounds, self._bucket = max_distance, max_rounds, max_bucket

    def expand(self, records):
        inputs = {
            "records": records,
            "record_bands": records | "BandKeys" >> beam.Map(band_keys),
            "payloads": records | "NodeHash" >> beam.Map(
                lambda r: (transcribed_first(r), r["fingerprint"])),
        }
        removed = inputs | "Components" >> RemoveNearDuplicates(
            HammingAtMost(self._max), counter="audio_dedup", max_bucket=self._bucket,
            max_rounds=self._rounds, node=transcribed_first)
        return {"records": removed["records"], "counts": removed[accounting.COUNTS],
                "samples": removed[accounting.SAMPLES]}


def transcribed_first(record: dict) -> str:
    """The record's node for near dedup, ranked so that a clip with a transcript is the
    smallest of its group (the survivor), then the smallest id."""
    return ("0" if record.get("text") else "1") + accounting.node_id(record)


class _ToExample(accounting.CountingDoFn):
    def __init__(self, validation_fraction: float):
        super().__init__()
        self._fraction = validation_fraction

    def process(self, record: dict):
        rid = record["id"]
        features = {"audio/encoded": record["audio"], "audio/format": record["audio_format"],
                    "audio/sample_rate": [int(record["sample_rate"])],
                    "audio/num_samples": [int(record["num_samples"])], "audio/id": rid}
        if record.get("text"):
            features["transcript/text"] = record["text"]
            if record.get("input_ids"):
                features["transcript/input_ids"] = record["input_ids"]
        split = split_of(placement_id(rid), self._fraction)
        self.count(SECONDS_OUT.split(".", 1)[0], SECONDS_OUT.split(".", 1)[1],
                   int(round(record["seconds"] * 1000)), metric=False)
        self.sample("kept", split, {k: v for k, v in record.items() if k != "audio"})
        yield (split, rid, encode_example(features), len(record.get("input_ids") or ()),
               len(record["audio"]), (record.get("source", ""), record.get("position", 0)))


class ToAudioExamples(beam.PTransform):
    """Records -> (split, id, serialized Example, n_tokens, n_bytes, origin) for WriteShards."""

    def __init__(self, validation_fraction: float):
        super().__init__()
        self._fraction = validation_fraction

    def expand(self, records):
        return records | "ToExample" >> beam.ParDo(_ToExample(self._fraction)).with_outputs(
            accounting.COUNTS, accounting.SAMPLES, main="examples")
