"""Beam steps of the image pipelines: validate/resize, exact and near-duplicate removal, Examples.

* :class:`ProcessImages` runs :func:`transforms.image.process.process_image` on each
  record: broken files go to the dead letter, rule failures are counted as
  filtered, both with their reason; formats, sizes and aspect ratios are
  counted for stats.json.
* :class:`ImageExactDedup`: identical source files (with identical captions,
  for pairs) keep the smallest id: the text step
  :class:`transforms.dedup.exact.ExactDedup` keyed by :func:`source_key`.
* :class:`ImageNearDedup`: near-duplicates by the 128-bit difference hash:
  LSH on the hash bits (8 bands of 16 bits: two hashes within Hamming
  distance 7 agree on at least one band; :func:`band_keys`), then the engine
  text uses too (:class:`transforms.dedup.components.RemoveNearDuplicates`):
  candidate pairs verified by Hamming distance
  (:class:`transforms.image.process.HammingAtMost`), large-star/small-star
  components, smallest id surviving.
* :class:`ToImageExamples`: the TF object-detection feature names
  (``image/encoded``, ``image/format``, ``image/height``, ``image/width``,
  ``image/id``, ``image/class/label``, ``caption/text``, ``caption/input_ids``).
"""

from __future__ import annotations

import hashlib
import time
from typing import Dict, Optional

import apache_beam as beam
from apache_beam import pvalue

from transforms import accounting
from transforms.accounting import FILTERED, INFO
from transforms.dedup.components import RemoveNearDuplicates
from transforms.dedup.exact import ExactDedup
from transforms.image.process import (HammingAtMost, ImageConfig, ImageReject, process_image,
                                      thumbnail)
from transforms.write.shards import encode_example, histogram_bucket, placement_id, split_of

__all__ = ["ProcessImages", "ImageExactDedup", "ImageNearDedup", "ToImageExamples",
           "source_key", "band_keys", "HIST_LONG_SIDE", "HIST_ASPECT", "BANDS"]

HIST_LONG_SIDE = "hist.image_long_side"
HIST_ASPECT = "hist.image_aspect_ratio_x100"
PHASH = "phash"
BANDS = 8  # of 16 bits each: hashes within Hamming distance 7 share one


class _ProcessDoFn(accounting.CountingDoFn):
    def __init__(self, config: ImageConfig):
        super().__init__()
        self._config = config

    def process(self, record: dict):
        data = record["image_bytes"]
        start = time.perf_counter()
        try:
            result = process_image(data, self._config)
        except ImageReject as e:
            self.time("images", time.perf_counter() - start)
            if e.kind == "dead":
                yield self.dead(accounting.dead_letter_entry(
                    record["source"], record["position"], e.reason, e.detail, data[:64],
                    unit="file" if record["position"] == 0 else "record", record_id=record["id"]))
            else:
                self.count(FILTERED, e.reason)
                self.sample(FILTERED, e.reason, dict(record, text=record.get("text") or e.detail))
            return
        self.time("images", time.perf_counter() - start)
        w, h = result["orig_width"], result["orig_height"]
        self.count(INFO, f"format.{result['format']}", metric=False)
        self.count(HIST_LONG_SIDE, str(histogram_bucket(max(w, h))), metric=False)
        self.count(HIST_ASPECT, str(histogram_bucket(round(100 * w / h))), metric=False)
        out = {k: v for k, v in record.items() if k != "image_bytes"}
        out.update(result)
        out["source_sha256"] = hashlib.sha256(data).hexdigest()
        yield out


class ProcessImages(beam.PTransform):
    def __init__(self, config: ImageConfig = ImageConfig()):
        super().__init__()
        self._config = config

    def expand(self, records):
        return records | "ValidateResize" >> beam.ParDo(_ProcessDoFn(self._config)).with_outputs(
            accounting.DEAD, accounting.COUNTS, accounting.SAMPLES, main="records")


def source_key(record: dict) -> str:
    """Exact-duplicate fingerprint of an image record: source bytes' sha256 and folded caption."""
    return record["source_sha256"] + "|" + " ".join(record.get("text", "").lower().split())


class ImageExactDedup(ExactDedup):
    """Identical source bytes (and caption, when there is one) -> the smallest id.

    :class:`transforms.dedup.exact.ExactDedup` keyed by :func:`source_key`.
    """

    def __init__(self):
        super().__init__(fingerprint=source_key)


def band_keys(record: dict, bands: int = BANDS):
    """``(node, [(band, 16 bits of the hash), ...])``: the record's node and a key per band of its hash."""
    h = record[PHASH]
    node = accounting.node_id(record)
    return node, [(i, (h >> (16 * i)) & 0xFFFF) for i in range(bands)]


class ImageNearDedup(beam.PTransform):
    """Near-duplicate images (dHash Hamming distance <= ``max_distance``, at most 7) -> survivors.

    Returns a dict with ``records``, ``counts`` and ``samples``.
    """

    def __init__(self, max_distance: int = 6, max_rounds: int = 10, max_bucket: int = 64):
        super().__init__()
        if not 0 <= max_distance <= 7:
            raise ValueError("max_distance must be in [0, 7] (8 bands of 16 bits)")
        self._max = max_distance
        self._rounds = max_rounds
        self._bucket = max_bucket

    def expand(self, records):
        inputs = {
            "records": records,
            "record_bands": records | "BandKeys" >> beam.Map(band_keys),
            "payloads": records | "NodeHash" >> beam.Map(lambda r: (accounting.node_id(r), r[PHASH])),
        }
        removed = inputs | "Components" >> RemoveNearDuplicates(
            HammingAtMost(self._max), counter="image_dedup", max_bucket=self._bucket,
            max_rounds=self._rounds, thumbnail=thumbnail)
        return {"records": removed["records"], "counts": removed[accounting.COUNTS],
                "samples": removed[accounting.SAMPLES]}


class _ToExample(accounting.CountingDoFn):
    def __init__(self, validation_fraction: float):
        super().__init__()
        self._fraction = validation_fraction

    def process(self, record: dict, label_index: Optional[Dict[str, int]] = None):
        rid = record["id"]
        features = {"image/encoded": record["jpeg"], "image/format": b"jpeg",
                    "image/height": [int(record["height"])], "image/width": [int(record["width"])],
                    "image/id": rid}
        if label_index is not None and "label" in record:
            features["image/class/label"] = [int(label_index[record["label"]])]
        if "text" in record:
            features["caption/text"] = record["text"]
        if "input_ids" in record:
            features["caption/input_ids"] = record["input_ids"] or [0]
        split = split_of(placement_id(rid), self._fraction)
        self.sample("kept", split, record, thumbnail(record))
        yield (split, rid, encode_example(features), len(record.get("input_ids", ())),
               len(record["jpeg"]), (record.get("source", ""), record.get("position", 0)))


class ToImageExamples(beam.PTransform):
    """Records -> (split, id, serialized Example, n_tokens, n_bytes) for :class:`WriteShards`."""

    def __init__(self, validation_fraction: float, labels=None):
        super().__init__()
        self._fraction = validation_fraction
        self._labels = labels  # PCollection of the sorted label list (one element), or None

    def expand(self, records):
        if self._labels is None:
            return records | "ToExample" >> beam.ParDo(_ToExample(self._fraction)).with_outputs(
                accounting.COUNTS, accounting.SAMPLES, main="examples")
        index = self._labels | "LabelIndex" >> beam.Map(lambda names: {n: i for i, n in enumerate(names)})
        return records | "ToExample" >> beam.ParDo(
            _ToExample(self._fraction), label_index=pvalue.AsSingleton(index)).with_outputs(
                accounting.COUNTS, accounting.SAMPLES, main="examples")
