"""Writers: tf.train.Example encoding, TFRecord shards, dead letter, stats, manifest.

Examples are encoded by hand (the protobuf wire format of ``tf.train.Example``
is four nested messages), so Beam workers never import TensorFlow; tests parse
them back with TensorFlow. TFRecord framing uses google-crc32c's C CRC-32C.

Sharding: a record's split is chosen by a hash of its id (stable across runs),
its shard by another hash of its id, and records are sorted by id inside a
shard, so the same records always give the same bytes, whatever the number
of workers. The shard count of a split is ``num_shards`` when given, else one
shard per ``target_shard_bytes`` of serialized examples.
"""

from __future__ import annotations

import array
import dataclasses
import json
import math
import re
import struct
import time
from typing import Any, Dict, List, Optional, Sequence, Tuple

import apache_beam as beam
import numpy as np
from apache_beam.io.filesystems import FileSystems

from transforms import accounting
from transforms.accounting import INFO, OUT
from transforms.write import formats
from transforms.packing import pack, unpack

__all__ = [
    "WriterConfig",
    "encode_example",
    "tfrecord_frame",
    "split_of",
    "shard_of",
    "shard_path",
    "histogram_bucket",
    "EncodeExamples",
    "WriteShards",
    "placement_id",
    "with_id",
    "read_varint",
]

TRAIN, VALIDATION = "train", "validation"
HIST_TOKENS = "hist.tokens_per_doc"
HIST_CHARS = "hist.chars_per_doc"
PROVENANCE = ("url", "license")
SOURCE_RECORDS, SOURCE_TOKENS = "source_records", "source_tokens"
# written records and tokens per language (the lang step's label), stats.json "languages"
LANGUAGE_RECORDS, LANGUAGE_TOKENS = "language_records", "language_tokens"
DUPLICATE_IDS = "duplicate_ids"


@dataclasses.dataclass(frozen=True)
class WriterConfig:
    validation_fraction: float = 0.05
    num_shards: int = 0  # 0 = from the data size
    target_shard_bytes: int = 128 << 20
    duplicate_ids: str = "keep"  # records sharing an input id: "keep" (renamed) or "dead_letter"
    output_format: str = "tfrecord"  # tfrecord | parquet | jsonl | webdataset (formats.py)

    def __post_init__(self):
        if self.output_format not in formats.FORMATS:
            raise ValueError(f"output_format must be one of {', '.join(formats.FORMATS)}, "
                             f"got {self.output_format!r}")
        if self.duplicate_ids not in ("keep", "dead_letter"):
            raise ValueError(f"duplicate_ids must be keep or dead_letter, got {self.duplicate_ids!r}")
        if not 0.0 <= self.validation_fraction < 1.0:
            raise ValueError(
                f"validation_fraction must be in [0, 1), got {self.validation_fraction}")
        if self.num_shards < 0:
            raise ValueError(f"num_shards must be >= 0, got {self.num_shards}")
        if self.target_shard_bytes <= 0:
            raise ValueError(f"target_shard_bytes must be positive, got {self.target_shard_bytes}")


# --------------------------------------------------------------------------
# tf.train.Example wire format


def _varint(value: int) -> bytes:
    if 0 <= value < _SHORT_LIMIT:
        return _SHORT_VARINTS[value]
    return _long_varint(value)


def _long_varint(value: int) -> bytes:
    if value < 0:
        value += 1 << 64  # int64 negatives are 10-byte varints
    out = bytearray()
    while True:
        bits = value & 0x7F
        value >>= 7
        if value:
            out.append(bits | 0x80)
        else:
            out.append(bits)
            return bytes(out)


# The varints of 0 .. 2**14 - 1 (one or two bytes: every field tag, most lengths).
_SHORT_LIMIT = 1 << 14
_SHORT_VARINTS = tuple(_long_varint(v) for v in range(_SHORT_LIMIT))


def _field(number: int, payload: bytes) -> bytes:
    """A length-delimited field."""
    return _varint((number << 3) | 2) + _varint(len(payload)) + payload


def _bytes_feature(values: Sequence[bytes]) -> bytes:
    # Feature.bytes_list = 1; BytesList.value = 1 (repeated bytes)
    return _field(1, b"".join(_field(1, v) for v in values))


# The varints of 0 .. 2**17 - 1 (1 to 3 bytes: every token id of a vocabulary of
# up to 131,072 pieces), built on first use: a token list is then one C-level
# join of table entries.
_SMALL_VARINTS: tuple = ()
_SMALL_LIMIT = 1 << 17


# The varints of a uint32 array in one compiled loop (numba): a token list is
# copied into an ``array("I")`` in C and encoded at about 20 ns per id, where the
# table join below takes about 100 (min, max, a lookup and a join per id).
# ``False``: numba is missing, the table and numpy paths serve.
_VARINT_KERNEL: Any = None


def _varint_kernel():
    global _VARINT_KERNEL
    if _VARINT_KERNEL is None:
        try:
            import numba
        except ImportError:  # pragma: no cover - numba is a dependency
            _VARINT_KERNEL = False
            return False

        @numba.njit(cache=True, nogil=True)
        def encode(values):  # pragma: no cover - compiled
            out = np.empty(values.shape[0] * 5, np.uint8)
            j = 0
            for i in range(values.shape[0]):
                v = values[i]
                while v >= 128:
                    out[j] = (v & 0x7F) | 0x80
                    v >>= 7
                    j += 1
                out[j] = v
                j += 1
            return out[:j]

        _VARINT_KERNEL = encode
    return _VARINT_KERNEL


def _packed_varints(values: Sequence[int]) -> bytes:
    """Varint encoding of many int64 values at once (compiled for uint32 lists, a table
    for small ones, else numpy)."""
    global _SMALL_VARINTS
    if len(values) >= 8 and isinstance(values, list):
        kernel = _varint_kernel()
        if kernel:
            try:  # non-negative ints below 2**32 (token ids); anything else below
                packed = array.array("I", values)
            except (OverflowError, TypeError):
                pass
            else:
                return kernel(np.frombuffer(packed, dtype=np.uintc)).tobytes()
    if len(values) >= 8 and min(values) >= 0 and max(values) < _SMALL_LIMIT:
        if not _SMALL_VARINTS:
            _SMALL_VARINTS = tuple(_varint(v) for v in range(_SMALL_LIMIT))
        return b"".join(map(_SMALL_VARINTS.__getitem__, values))
    if len(values) < 8:
        return b"".join(_varint(int(v)) for v in values)
    arr = np.asarray(values, dtype=np.int64).view(np.uint64)  # negatives: two's complement
    groups = np.ones(arr.shape, dtype=np.int64)  # 7-bit groups per value
    rest = arr >> np.uint64(7)
    while rest.any():
        groups += rest > 0
        rest >>= np.uint64(7)
    width = int(groups.max())
    shifts = (np.arange(width, dtype=np.uint64) * np.uint64(7))[None, :]
    table = ((arr[:, None] >> shifts) & np.uint64(0x7F)).astype(np.uint8)
    index = np.arange(width)[None, :]
    table |= ((index < groups[:, None] - 1) * 0x80).astype(np.uint8)  # continuation bits
    return table[index < groups[:, None]].tobytes()


def _int64_feature(values: Sequence[int]) -> bytes:
    # Feature.int64_list = 3; Int64List.value = 1 (packed varints)
    return _field(3, _field(1, _packed_varints(values)) if len(values) else b"")


def _float_feature(values: Sequence[float]) -> bytes:
    # Feature.float_list = 2; FloatList.value = 1 (packed fixed32)
    packed = struct.pack(f"<{len(values)}f", *values)
    return _field(2, _field(1, packed) if values else b"")


def encode_example(features: Dict[str, Any]) -> bytes:
    """Serialize ``{name: bytes | str | [int] | [float] | [bytes]}`` as a tf.train.Example.

    Keys are written sorted, so equal inputs give equal bytes.
    """
    entries = []
    for name in sorted(features):
        value = features[name]
        if isinstance(value, str):
            feature = _bytes_feature([value.encode("utf-8")])
        elif isinstance(value, (bytes, bytearray)):
            feature = _bytes_feature([bytes(value)])
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], float):
            feature = _float_feature(value)
        elif isinstance(value, (list, tuple)) and value and isinstance(value[0], (bytes, str)):
            feature = _bytes_feature([v.encode("utf-8") if isinstance(v, str) else v for v in value])
        elif isinstance(value, (list, tuple)):
            feature = _int64_feature(value)
        elif isinstance(value, int):
            feature = _int64_feature([value])
        else:
            raise TypeError(f"feature {name!r}: unsupported type {type(value).__name__}")
        # Features.feature = 1 (map<string, Feature>: entry key = 1, value = 2)
        entries.append(_field(1, _field(1, name.encode("utf-8")) + _field(2, feature)))
    # Example.features = 1
    return _field(1, b"".join(entries))


def read_varint(buf: bytes, pos: int, end: Optional[int] = None) -> Tuple[int, int]:
    """The varint at ``buf[pos:end]`` and the position after it; ValueError when malformed.

    The one protobuf varint reader of the project (with_id, tfds_meta, verify).
    """
    end = len(buf) if end is None else end
    result = shift = 0
    while True:
        if pos >= end:
            raise ValueError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if byte < 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ValueError("varint longer than 10 bytes")


ID_FEATURES = ("id", "image/id")


def with_id(example: bytes, new_id: str) -> bytes:
    """``example`` (as :func:`encode_example` wrote it) with its id feature set to ``new_id``.

    The id feature is ``id`` (text) or ``image/id`` (images); entries stay in
    sorted order, so the bytes equal those of encoding the renamed record.
    """
    tag, pos = read_varint(example, 0)
    length, pos = read_varint(example, pos)
    if tag != 0x0A or pos + length != len(example):
        raise ValueError("not an Example written by encode_example")
    entries = []
    end = pos + length
    while pos < end:
        start = pos
        _, pos = read_varint(example, pos)  # the map entry tag (field 1, length-delimited)
        size, pos = read_varint(example, pos)
        body = example[pos:pos + size]
        pos += size
        _, kpos = read_varint(body, 0)
        klen, kpos = read_varint(body, kpos)
        name = body[kpos:kpos + klen].decode("utf-8")
        if name in ID_FEATURES:
            entries.append(_field(1, _field(1, body[kpos:kpos + klen])
                                  + _field(2, _bytes_feature([new_id.encode("utf-8")]))))
        else:
            entries.append(example[start:pos])
    return _field(1, b"".join(entries))


def _masked_crc(data: bytes) -> int:
    import google_crc32c

    crc = google_crc32c.value(data)
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def tfrecord_frame(data: bytes) -> bytes:
    """One TFRecord: length, masked CRC of the length, data, masked CRC of the data."""
    length = struct.pack("<Q", len(data))
    return length + struct.pack("<I", _masked_crc(length)) + data + struct.pack(
        "<I", _masked_crc(data))


# --------------------------------------------------------------------------
# Split, shard, histogram


DUP_SUFFIX = "#dup"
_DUP_RE = re.compile(r"#dup[1-9][0-9]*$")


def placement_id(record_id: str) -> str:
    """The id a record's split and shard are computed from.

    Records that share an input id are written with unique output ids: the
    first (in byte order of the encoded Example) keeps the id, the others get
    ``#dup1``, ``#dup2``, ... appended (:func:`dedupe_ids`). They were placed
    by the shared id, so placement strips that suffix again.
    """
    return _DUP_RE.sub("", record_id)


def split_of(record_id: str, validation_fraction: float) -> str:
    bucket = accounting.stable_hash64("split:" + record_id) % 1_000_000
    return VALIDATION if bucket < validation_fraction * 1_000_000 else TRAIN


def shard_of(record_id: str, num_shards: int) -> int:
    return accounting.stable_hash64("shard:" + record_id) % num_shards


def shard_path(output_dir: str, split: str, index: int, num_shards: int,
               output_format: str = "tfrecord") -> str:
    ext = formats.EXTENSIONS[output_format]
    return FileSystems.join(output_dir, "data", f"{split}-{index:05d}-of-{num_shards:05d}.{ext}")


def histogram_bucket(value: int) -> int:
    """Lower bound of ``value``'s bucket: exact below 16, then 8 buckets per octave."""
    if value < 16:
        return value
    shift = value.bit_length() - 4
    return (value >> shift) << shift


def num_shards_for(total_bytes: int, records: int, config: WriterConfig) -> int:
    if config.num_shards:
        return config.num_shards
    return max(1, min(records, math.ceil(total_bytes / config.target_shard_bytes)))


# --------------------------------------------------------------------------
# Beam transforms


class _ToExample(accounting.CountingDoFn):
    def __init__(self, config: WriterConfig):
        super().__init__()
        self._config = config

    def process(self, record: dict):
        start = time.perf_counter()
        rid = record["id"]
        source = record.get("source", "")
        features: Dict[str, Any] = {"id": rid, "source": source}
        meta = record.get("meta") or {}
        for name in PROVENANCE:  # where the input has them: attribution travels with the text
            value = meta.get(name)
            if isinstance(value, str) and value:
                features[name] = value
        language = record.get("language")
        if isinstance(language, str) and language:  # the lang step ran
            features["language"] = language
            features["language_score"] = [float(record.get("language_score", 0.0))]
        if "input_ids" in record:
            features["input_ids"] = record["input_ids"]
            self.count(HIST_TOKENS, str(histogram_bucket(len(record["input_ids"]))), metric=False)
        else:
            features["text"] = record["text"]
        self.count(HIST_CHARS, str(histogram_bucket(len(record["text"]))), metric=False)
        split = split_of(placement_id(rid), self._config.validation_fraction)
        example = encode_example(features)
        self.time("encode_examples", time.perf_counter() - start)
        self.sample("kept", split, record)
        n_tokens = len(record.get("input_ids", ()))
        yield (split, rid, example, n_tokens, len(record["text"].encode("utf-8")),
               (source, record.get("position", 0)), language or "")


class EncodeExamples(beam.PTransform):
    """Records -> (split, id, serialized Example, n_tokens, n_text_bytes)."""

    def __init__(self, config: WriterConfig):
        super().__init__()
        self._config = config

    def expand(self, records):
        return records | "ToExample" >> beam.ParDo(_ToExample(self._config)).with_outputs(
            accounting.COUNTS, accounting.SAMPLES, main="examples")


class _AssignShard(beam.DoFn):
    def __init__(self, config: WriterConfig):
        self._config = config

    def process(self, example, sizes: Dict[str, Tuple[int, int]]):
        split, rid, data = example[:3]
        total, n = sizes[split]
        shards = num_shards_for(total, n, self._config)
        yield (split, shard_of(placement_id(rid), shards), shards), example


class _WriteShard(accounting.CountingDoFn):
    """One shard: its examples sorted by (id, bytes), ids made unique, framed and written.

    Records that share an id hash to the same split and shard, so they meet
    here: the first keeps the id; with ``duplicate_ids="keep"`` the others are
    written as ``ID#dup1``, ``ID#dup2``... (counted under ``info.duplicate_ids``),
    with ``"dead_letter"`` they go to the dead letter (reason ``duplicate_id``).
    """

    def __init__(self, output_dir: str, duplicate_ids: str = "keep",
                 output_format: str = "tfrecord", columns: Sequence[str] = ()):
        super().__init__()
        self._output_dir = output_dir
        self._duplicate_ids = duplicate_ids
        self._format = output_format
        self._columns = tuple(columns)

    def process(self, keyed):
        (split, index, shards), examples = keyed
        start = time.perf_counter()
        examples = sorted((_unpack_example(e) for e in examples), key=lambda e: (e[1], e[2]))
        path = shard_path(self._output_dir, split, index, shards, self._format)
        tokens = text_bytes = written = 0
        input_ids = {e[1] for e in examples}
        used: set = set()
        next_suffix: Dict[str, int] = {}
        with FileSystems.create(path) as f:
            shard = formats.open_shard(self._format, f, self._columns, index)
            for example in examples:
                _, rid, data, n_tokens, n_bytes = example[:5]
                if rid in used:
                    self.count(INFO, DUPLICATE_IDS)
                    if self._duplicate_ids == "dead_letter":
                        source, position = example[5] if len(example) > 5 else ("", 0)
                        yield self.dead(accounting.dead_letter_entry(
                            source, position, "duplicate_id",
                            f"input id {rid!r} was already written", unit="record",
                            record_id=rid))
                        continue
                    # every id placed here is in input_ids: a new one collides with none
                    base = placement_id(rid)
                    k = next_suffix.get(base, 1)
                    while f"{base}{DUP_SUFFIX}{k}" in used or f"{base}{DUP_SUFFIX}{k}" in input_ids:
                        k += 1
                    next_suffix[base] = k + 1
                    rid = f"{base}{DUP_SUFFIX}{k}"
                    data = with_id(data, rid)
                used.add(rid)
                if len(example) > 5:
                    self.count(SOURCE_RECORDS, example[5][0], metric=False)
                    if n_tokens:
                        self.count(SOURCE_TOKENS, example[5][0], n_tokens, metric=False)
                if len(example) > 6 and example[6]:
                    self.count(LANGUAGE_RECORDS, example[6], metric=False)
                    if n_tokens:
                        self.count(LANGUAGE_TOKENS, example[6], n_tokens, metric=False)
                written += 1
                shard.add(data)
                tokens += n_tokens
                text_bytes += n_bytes
            shard.close()
        self.time("write_shards", time.perf_counter() - start)
        self.count(OUT, split, written)
        self.count(INFO, f"tokens.{split}", tokens)
        self.count(INFO, f"text_bytes.{split}", text_bytes)
        yield {"split": split, "index": index, "num_shards": shards, "path": path,
               "records": written, "bytes": shard.size, "sha256": shard.sha256}


def _pack_example(example: tuple) -> tuple:
    """(split, id, Example bytes, ...) -> (split, id, packed bytes, their size, ...).

    Not compressed: an Example of token ids is mostly varints, which Zstandard
    shrank 1.23x here for 7.3 us more per pack and 2.8 us more per unpack,
    and the unpacking is in the shard writer, one worker per shard.
    """
    return (example[0], example[1], pack(example[2], compress=False, spill=True),
            len(example[2])) + tuple(example[3:])


def _unpack_example(packed: tuple) -> tuple:
    return (packed[0], packed[1], unpack(packed[2])) + tuple(packed[4:])


class WriteShards(beam.PTransform):
    """Encoded examples -> shard files; outputs one info dict per written shard.

    The examples wait for the split sizes and for their shard packed
    (:mod:`transforms.packing`); each shard unpacks its own.
    """

    def __init__(self, output_dir: str, config: WriterConfig, columns: Sequence[str] = ()):
        super().__init__()
        if config.output_format != "tfrecord" and not columns:
            raise ValueError(f"output_format {config.output_format!r} needs the run's columns")
        self._output_dir = output_dir
        self._config = config
        self._columns = tuple(columns)

    def expand(self, examples):
        examples = examples | "PackExamples" >> beam.Map(_pack_example)
        sizes = (
            examples
            | "SizeOf" >> beam.Map(lambda e: (e[0], (e[3] + 16, 1)))
            | "SizePerSplit" >> beam.CombinePerKey(
                lambda values: tuple(map(sum, zip(*values))) if values else (0, 0))
        )
        return (
            examples
            | "AssignShard" >> beam.ParDo(_AssignShard(self._config), sizes=beam.pvalue.AsDict(sizes))
            | "GroupShards" >> beam.GroupByKey()
            | "WriteShard" >> beam.ParDo(
                _WriteShard(self._output_dir, self._config.duplicate_ids,
                            self._config.output_format, self._columns)).with_outputs(
                accounting.COUNTS, accounting.DEAD, main="shards")
        )


def write_empty_shards(output_dir: str, shards: List[dict],
                       splits: Sequence[str] = (), output_format: str = "tfrecord",
                       columns: Sequence[str] = ()) -> List[dict]:
    """Create the shards that hashing left empty, so every ``-of-N`` set is complete.

    A split in ``splits`` that got no record at all gets one empty shard, so
    readers always find every split. An empty shard is a valid file of its
    format with no record (an empty TFRecord or JSON Lines file, a Parquet file
    with the schema, a tar with its end blocks).
    """
    by_split: Dict[str, Tuple[int, set]] = {split: (1, set()) for split in splits}
    for info in shards:
        n, seen = by_split.get(info["split"], (info["num_shards"], set()))
        if not seen:
            by_split[info["split"]] = (info["num_shards"], seen)
        seen.add(info["index"])
    created = []
    for split, (n, seen) in sorted(by_split.items()):
        for index in range(n):
            if index not in seen:
                path = shard_path(output_dir, split, index, n, output_format)
                with FileSystems.create(path) as f:
                    shard = formats.open_shard(output_format, f, columns, index)
                    shard.close()
                created.append({"split": split, "index": index, "num_shards": n, "path": path,
                                "records": 0, "bytes": shard.size, "sha256": shard.sha256})
    return created


def json_dumps(obj: Any) -> bytes:
    return (json.dumps(obj, indent=2, sort_keys=True, ensure_ascii=False) + "\n").encode("utf-8")
