"""Reading beamtrain shards without TensorFlow: a NumPy iterator for JAX (and any framework).

The shards are TFRecord files of ``tf.train.Example`` (DESIGN.md's contract).
This module reads them without TensorFlow: the TFRecord framing with both
masked CRC-32C checked (google-crc32c, C; the writer's own CRC function), and
the Example protobuf decoded from its wire format by the decoder the TFDS
metadata writer already uses (bytes, int64 and float lists).

:class:`LMBatches` turns a text output into language-model batches with the
same contents as :mod:`trainer.input_pipeline`: documents cut into pieces of
``seq_len + 1``, then packed rows (``pack``, segment ids and per-segment
positions) or length-sorted windows padded per batch (``bucket``), each batch
``({"tokens", "segment_ids", "positions"}, targets, weights)`` of int32 /
float32 NumPy arrays.

Sharding: every record goes to exactly one of ``process_count x num_workers``
readers (JAX processes by ``jax.process_index()``, and, for a data-loader
with worker processes, its workers): with the manifest's per-shard record
counts, each reader takes a contiguous equal share of the records laid end to
end (:func:`trainer.sharding.pipeline_segments`); without them, every
``n``-th record. Shuffling is a seeded buffer (per epoch, per reader).

Exact resume: ``state_dict()`` is ``{"epoch", "batches"}`` (batches yielded
in that epoch); ``load_state_dict`` makes the next iteration skip those, and
the order is a function of the seed, the epoch and the reader alone.
"""

from __future__ import annotations

import json
import os
import random
import struct
from typing import Dict, Iterator, List, Optional, Tuple

import numpy as np

from trainer.sharding import pipeline_segments
from transforms.write.shards import _masked_crc
from transforms.write.tfds_meta import example_keys

__all__ = ["CorruptRecord", "read_tfrecords", "parse_example", "shard_files", "LMBatches",
           "reader_index"]


class CorruptRecord(ValueError):
    """A TFRecord whose length or data does not match its CRC (or is cut short)."""


def read_tfrecords(path: str, skip: int = 0, take: Optional[int] = None) -> Iterator[bytes]:
    """The records of one TFRecord file, CRCs checked; ``skip``/``take`` select a range."""
    n = 0
    with open(path, "rb") as f:
        while take is None or n < skip + take:
            header = f.read(12)
            if not header:
                return
            if len(header) < 12:
                raise CorruptRecord(f"{path}: cut inside a record header after {n} records")
            length, length_crc = struct.unpack("<QI", header)
            if _masked_crc(header[:8]) != length_crc:
                raise CorruptRecord(f"{path}: record {n}: length CRC mismatch")
            if n < skip:
                f.seek(length + 4, os.SEEK_CUR)
                n += 1
                continue
            data = f.read(length)
            crc = f.read(4)
            if len(data) < length or len(crc) < 4:
                raise CorruptRecord(f"{path}: record {n} is cut short")
            if _masked_crc(data) != struct.unpack("<I", crc)[0]:
                raise CorruptRecord(f"{path}: record {n}: data CRC mismatch")
            n += 1
            yield data


def parse_example(data: bytes) -> Dict[str, list]:
    """A serialized ``tf.train.Example`` -> ``{feature name: [values]}`` (bytes, ints or floats):
    the wire-format decoder the TFDS metadata writer uses
    (:func:`transforms.write.tfds_meta.example_keys`)."""
    return {key: values for key, (_, values) in example_keys(data).items()}


def shard_files(data_dir: str, split: str) -> Tuple[List[str], Optional[Dict[str, int]]]:
    """The split's shard files (sorted) and their record counts from manifest.json (or None)."""
    data = os.path.join(data_dir, "data")
    files = sorted(os.path.join(data, n) for n in os.listdir(data)
                   if n.startswith(f"{split}-") and n.endswith(".tfrecord"))
    if not files:
        other = [n for n in os.listdir(data) if n.startswith(f"{split}-")]
        hint = (f" ({other[0].rsplit('.', 1)[-1]} shards: these loaders read --output_format "
                "tfrecord)") if other else ""
        raise FileNotFoundError(f"no {split} TFRecord shards in {data}{hint}")
    counts = None
    try:
        with open(os.path.join(data_dir, "manifest.json"), encoding="utf-8") as f:
            shards = json.load(f)["shards"]
        counts = {os.path.join(data_dir, s["path"]): int(s["records"]) for s in shards}
        if not all(p in counts for p in files):
            counts = None
    except (OSError, ValueError, KeyError, TypeError):
        pass
    return files, counts


def reader_index(process_index: Optional[int] = None, process_count: Optional[int] = None,
                 worker_id: int = 0, num_workers: int = 1) -> Tuple[int, int]:
    """(this reader's index, readers in all): JAX processes x data-loader workers."""
    if process_index is None or process_count is None:
        try:
            import jax

            process_index, process_count = jax.process_index(), jax.process_count()
        except ImportError:
            process_index, process_count = 0, 1
    return process_index * num_workers + worker_id, process_count * num_workers


class LMBatches:
    """Language-model batches from a text output's shards, as NumPy arrays (no TensorFlow).

    Iterating gives one epoch (``repeat=False``) or epochs forever; each
    reader (``index`` of ``count``) reads its own share of the records.
    """

    def __init__(self, data_dir: str, seq_len: int, batch_size: int, split: str = "train",
                 mode: str = "pack", shuffle_buffer: int = 4096, seed: int = 0,
                 index: int = 0, count: int = 1, repeat: bool = False, bucket_window: int = 64,
                 with_ids: bool = False, pack_group: int = 512):
        if mode not in ("pack", "bucket"):
            raise ValueError(f"mode must be pack or bucket, got {mode!r}")
        if not 0 <= index < count:
            raise ValueError(f"reader index {index} not in [0, {count})")
        self.files, self.counts = shard_files(data_dir, split)
        self.seq_len, self.batch_size, self.mode = seq_len, batch_size, mode
        self.shuffle_buffer, self.seed, self.index, self.count = shuffle_buffer, seed, index, count
        self.repeat, self.window, self.with_ids = repeat, bucket_window, with_ids
        self.pack_group = pack_group
        self.epoch, self.batches = 0, 0
        self._skip = 0

    # ---------------------------------------------------------------- state

    def state_dict(self) -> Dict[str, int]:
        return {"epoch": self.epoch, "batches": self.batches}

    def load_state_dict(self, state: Dict[str, int]) -> None:
        self.epoch, self._skip = int(state["epoch"]), int(state["batches"])

    # ---------------------------------------------------------------- records

    def records(self, epoch: int) -> Iterator[Tuple[str, List[int]]]:
        """This reader's (id, input_ids) for ``epoch``, shuffled with (seed, epoch, index)."""
        if self.counts is not None:
            parts = pipeline_segments(self.files, self.counts, self.count, self.index)
            stream = (rec for f, skip, take in parts for rec in read_tfrecords(f, skip, take))
        else:
            stream = (rec for i, rec in enumerate(r for f in self.files for r in read_tfrecords(f))
                      if i % self.count == self.index)
        rng = random.Random(f"{self.seed}:{epoch}:{self.index}")
        buffer: List[bytes] = []
        for raw in stream:
            if self.shuffle_buffer <= 1:
                yield self._decode(raw)
                continue
            if len(buffer) < self.shuffle_buffer:
                buffer.append(raw)
                continue
            i = rng.randrange(len(buffer))
            buffer[i], raw = raw, buffer[i]
            yield self._decode(raw)
        rng.shuffle(buffer)
        for raw in buffer:
            yield self._decode(raw)

    @staticmethod
    def _decode(raw: bytes) -> Tuple[str, List[int]]:
        ex = parse_example(raw)
        rid = (ex.get("id") or [b""])[0].decode("utf-8", "replace")
        return rid, ex.get("input_ids", [])

    # ---------------------------------------------------------------- batches

    def _pieces(self, epoch: int) -> Iterator[Tuple[str, List[int]]]:
        """Each document cut into pieces of ``seq_len + 1`` (an empty document is one empty
        piece, as the tf.data cut gives)."""
        piece = self.seq_len + 1
        for rid, ids in self.records(epoch):
            for start in range(0, max(len(ids), 1), piece):
                yield rid, ids[start:start + piece]

    def _packed(self, epoch: int):
        """Groups of ``pack_group`` pieces, each concatenated and cut into rows of
        ``seq_len + 1`` (its last row padded), as :func:`trainer.input_pipeline._pack` does."""
        row = self.seq_len + 1
        rows: List[tuple] = []
        group: List[Tuple[str, List[int]]] = []

        def pack(pieces):
            cur_t, cur_s, cur_p, cur_ids, seg = [], [], [], [], 0
            for rid, chunk in pieces:
                if not chunk and cur_t:
                    seg += 1  # an empty piece still takes a segment number, as in tf.data
                while chunk:
                    room = row - len(cur_t)
                    part, chunk = chunk[:room], chunk[room:]
                    seg += 1
                    cur_t += part
                    cur_s += [seg] * len(part)
                    cur_p += list(range(len(part)))
                    cur_ids.append(rid)
                    if len(cur_t) == row:
                        yield cur_t, cur_s, cur_p, cur_ids
                        cur_t, cur_s, cur_p, cur_ids, seg = [], [], [], [], 0
            if cur_t:
                pad = row - len(cur_t)
                yield cur_t + [0] * pad, cur_s + [0] * pad, cur_p + [0] * pad, cur_ids

        def batches(new_rows):
            rows.extend(new_rows)
            while len(rows) >= self.batch_size:
                chunk = rows[:self.batch_size]
                del rows[:self.batch_size]
                yield self._example(np.array([r[0] for r in chunk]), np.array([r[1] for r in chunk]),
                                    np.array([r[2] for r in chunk]), [r[3] for r in chunk])

        for item in self._pieces(epoch):
            group.append(item)
            if len(group) == self.pack_group:
                yield from batches(pack(group))
                group = []
        yield from batches(pack(group))
        if rows and not self.repeat:  # the short last batch of a finite pass
            yield self._example(np.array([r[0] for r in rows]), np.array([r[1] for r in rows]),
                                np.array([r[2] for r in rows]), [r[3] for r in rows])

    def _bucketed(self, epoch: int):
        window: List[Tuple[str, List[int]]] = []
        size = self.window * self.batch_size

        def flush(items):
            items = sorted(items, key=lambda p: len(p[1]))
            for i in range(0, len(items) - self.batch_size + 1, self.batch_size):
                chunk = items[i:i + self.batch_size]
                width = max(len(c[1]) for c in chunk)
                tokens = np.zeros((len(chunk), width), np.int64)
                for r, (_, ids) in enumerate(chunk):
                    tokens[r, :len(ids)] = ids
                segments = (tokens != 0).astype(np.int32)
                positions = np.broadcast_to(np.arange(width), tokens.shape)
                yield self._example(tokens, segments, positions, [[c[0]] for c in chunk])

        for item in self._pieces(epoch):
            if len(item[1]) < 2:
                continue  # one token predicts nothing
            window.append(item)
            if len(window) == size:
                yield from flush(window)
                window = []
        yield from flush(window)

    def _example(self, tokens, segments, positions, ids):
        inputs, targets = tokens[:, :-1], tokens[:, 1:]
        seg_in, seg_out = segments[:, :-1], segments[:, 1:]
        weights = ((seg_in == seg_out) & (seg_out > 0)).astype(np.float32)
        features = {"tokens": inputs.astype(np.int32), "segment_ids": seg_in.astype(np.int32),
                    "positions": np.asarray(positions)[:, :-1].astype(np.int32)}
        if self.with_ids:
            features["ids"] = ids
        return features, targets.astype(np.int32), weights

    def __iter__(self):
        while True:
            make = self._packed if self.mode == "pack" else self._bucketed
            self.batches = 0
            for batch in make(self.epoch):
                self.batches += 1
                if self._skip:
                    self._skip -= 1
                    continue
                yield batch
            self.epoch += 1
            if not self.repeat:
                return


def sharded_ids(data_dir: str, split: str, index: int, count: int) -> List[str]:
    """The record ids one reader of ``count`` reads, in file order (tests, audits)."""
    loader = LMBatches(data_dir, 8, 1, split=split, shuffle_buffer=0, index=index, count=count)
    return [rid for rid, _ in loader.records(0)]

