"""Shard formats: TFRecord (the default), Parquet, JSON Lines and WebDataset tars.

``--output_format tfrecord|parquet|jsonl|webdataset`` chooses how every
pipeline writes its shards. Whatever the format, a shard holds the same
records in the same order (sorted by id, ids made unique), under the same
name with the format's extension (``data/train-00000-of-00004.parquet``), and
manifest.json, verify and the accounting identity cover it the same way: the
manifest lists each file's records, bytes and sha256, and verify reads every
file back (records, ids and their placement).

The records are the run's tf.train.Examples, decoded back into columns, so
every format carries exactly what the TFRecord shard would:

==============================================  ===============================  =================
Example key                                     column                           Arrow type
==============================================  ===============================  =================
``id``, ``image/id``, ``audio/id``              ``id``                           string
``source``, ``url``, ``license``, ``language``  the same                         string
``language_score``                              ``language_score``               float32
``text``                                        ``text``                         string
``input_ids``                                   ``input_ids``                    list<int32>
``image/encoded`` + ``image/format``            ``image``                        struct<bytes, path>
``image/height``, ``image/width``               ``height``, ``width``            int64
``image/class/label``                           ``label``                        int64
``caption/text``                                ``caption``                      string
``caption/input_ids``                           ``caption_input_ids``            list<int32>
``audio/encoded`` + ``audio/format``            ``audio``                        struct<bytes, path>
``audio/sample_rate``, ``audio/num_samples``    ``sample_rate``, ``num_samples``  int64
``transcript/text``                             ``transcript``                   string
``transcript/input_ids``                        ``transcript_input_ids``         list<int32>
==============================================  ===============================  =================

The columns of a run are fixed by its configuration (:func:`columns_for`), so
every shard of a dataset has one schema; a record without a column (a
document with no ``url``) has a null there.

* **Parquet**: one file per shard, zstd, row groups of at most
  :data:`ROW_GROUP_BYTES` of column data (Hugging Face aims at 100 MB; smaller
  groups keep a streaming reader's memory low). Media columns are the
  ``{bytes, path}`` structs of Hugging Face's ``Image`` and ``Audio``
  features, named in the schema's ``huggingface`` metadata, so
  ``datasets.load_dataset("parquet", data_files=...)`` decodes them.
* **JSON Lines**: one object per line with the same columns (nulls
  included, so every line has every key); media bytes are base64 text.
* **WebDataset**: a tar per shard; a sample is ``KEY.json`` (every column but
  the text and the media), ``KEY.txt`` (``text``, ``caption`` or
  ``transcript``), ``KEY.cls`` (the label), ``KEY.jpg``/``.png``/``.flac``/
  ``.wav`` (the media). KEY is ``SSSSS_NNNNNNNN`` (shard index, position),
  with no dot, as WebDataset splits names at the first dot; the record id is in
  the json. Tar headers carry no time, owner or mode of the machine, so the
  bytes are the same on every run.

The TFRecord framing is not touched: a tfrecord run writes what it always did.
"""

from __future__ import annotations

import base64
import hashlib
import io
import json
import re
import tarfile
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np

FORMATS = ("tfrecord", "parquet", "jsonl", "webdataset")
EXTENSIONS = {"tfrecord": "tfrecord", "parquet": "parquet", "jsonl": "jsonl", "webdataset": "tar"}
ROW_GROUP_BYTES = 32 << 20
# verify reads one JSON line / tar json member at a time: a longer one is a problem, not a
# read into memory (the largest record beamtrain writes is a few MB)
MAX_RECORD_BYTES = 256 << 20

__all__ = ["FORMATS", "EXTENSIONS", "ROW_GROUP_BYTES", "columns_for", "ShardFile", "open_shard",
           "example_row", "read_shard_ids", "arrow_schema", "MEDIA_EXTENSIONS"]

# Example key -> (column, kind); kind: str, float, int, ids, media, format (folded into media)
COLUMN_OF: Dict[str, Tuple[Optional[str], str]] = {
    "id": ("id", "str"), "image/id": ("id", "str"), "audio/id": ("id", "str"),
    "source": ("source", "str"), "url": ("url", "str"), "license": ("license", "str"),
    "language": ("language", "str"), "language_score": ("language_score", "float"),
    "text": ("text", "str"), "input_ids": ("input_ids", "ids"),
    "image/encoded": ("image", "media"), "image/format": (None, "format"),
    "image/height": ("height", "int"), "image/width": ("width", "int"),
    "image/class/label": ("label", "int"),
    "caption/text": ("caption", "str"), "caption/input_ids": ("caption_input_ids", "ids"),
    "audio/encoded": ("audio", "media"), "audio/format": (None, "format"),
    "audio/sample_rate": ("sample_rate", "int"), "audio/num_samples": ("num_samples", "int"),
    "transcript/text": ("transcript", "str"),
    "transcript/input_ids": ("transcript_input_ids", "ids"),
}
_KIND_OF_COLUMN = {col: kind for col, kind in COLUMN_OF.values() if col}
TEXT_COLUMNS = ("text", "caption", "transcript")  # WebDataset: KEY.txt
MEDIA_EXTENSIONS = {"jpeg": "jpg", "jpg": "jpg", "png": "png", "webp": "webp", "flac": "flac",
                    "wav": "wav"}
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")


def columns_for(config: Dict[str, Any]) -> List[str]:
    """The columns of a run, in order, from its configuration (manifest.json's ``config``)."""
    from transforms.write.tfds_meta import expected_keys, output_kind

    kind = output_kind(config)
    keys = list(expected_keys(config))
    if kind == "text":
        keys += ["url", "license"]
        if "lang" in (config.get("steps") or []):
            keys += ["language", "language_score"]
    elif kind == "audio":
        keys += ["transcript/text", "transcript/input_ids"]
    order = [c for c, _ in COLUMN_OF.values() if c]
    wanted = {COLUMN_OF[k][0] for k in keys if COLUMN_OF[k][0]}
    return sorted(wanted, key=order.index)


# --------------------------------------------------------------------------
# Example -> row


def _media_path(rid: str, fmt: str) -> str:
    """A file name for a record's media: its id where that is a safe short name, else the
    id made safe and shortened plus a hash of the whole id, so two ids never share a name
    ("a/b" and "a_b" both make "a_b")."""
    safe = _UNSAFE.sub("_", rid).strip("._")[-80:]
    if safe != rid or not safe:
        safe = f"{safe or 'record'}-{hashlib.sha256(rid.encode('utf-8')).hexdigest()[:12]}"
    return f"{safe}.{fmt}"


def example_row(example: bytes, columns: Sequence[str]) -> Dict[str, Any]:
    """The columns of one serialized Example (as :func:`~transforms.write.shards.encode_example`
    wrote it): str, int, float, list of int, or ``{"bytes", "path"}`` for media.

    ValueError when the Example has a key that is not one of ``columns``.
    """
    from transforms.write.tfds_meta import example_keys

    features = example_keys(example)
    row: Dict[str, Any] = dict.fromkeys(columns)
    formats = {}
    for key, (_, values) in features.items():
        column, kind = COLUMN_OF.get(key, (None, "unknown"))
        if kind == "format":
            formats[key.split("/")[0]] = values[0].decode("utf-8") if values else ""
            continue
        if column not in row:
            raise ValueError(f"Example key {key!r} has no column in this run's schema "
                             f"({', '.join(columns)})")
        if kind == "str":
            row[column] = values[0].decode("utf-8") if values else ""
        elif kind == "int":
            row[column] = int(values[0]) if values else None
        elif kind == "float":  # float32 in the Example: its shortest decimal, not 0.91079998...
            row[column] = float(str(np.float32(values[0]))) if values else None
        elif kind == "ids":
            row[column] = [int(v) for v in values]
        else:  # media
            row[column] = {"bytes": values[0] if values else b"", "path": None}
    for media in ("image", "audio"):
        if row.get(media) is not None:
            fmt = formats.get(media, "")
            row[media]["path"] = _media_path(row.get("id") or "", MEDIA_EXTENSIONS.get(fmt, fmt))
    return row


# --------------------------------------------------------------------------
# Writers


class _Hashing:
    """A write-only file that counts and hashes what goes through it."""

    def __init__(self, f):
        self._f = f
        self.sha = hashlib.sha256()
        self.size = 0
        self.closed = False

    def write(self, data) -> int:
        data = bytes(data)
        self._f.write(data)
        self.sha.update(data)
        self.size += len(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        pass

    def writable(self) -> bool:
        return True

    def readable(self) -> bool:
        return False

    def seekable(self) -> bool:
        return False

    def close(self) -> None:  # the caller closes the real file
        self.closed = True


def arrow_schema(columns: Sequence[str]):
    """The Parquet schema of ``columns``, with Hugging Face's feature names for media."""
    import pyarrow as pa

    media = pa.struct([("bytes", pa.binary()), ("path", pa.string())])
    types = {"str": pa.string(), "int": pa.int64(), "float": pa.float32(),
             "ids": pa.list_(pa.int32()), "media": media}
    fields = [pa.field(c, types[_KIND_OF_COLUMN[c]]) for c in columns]
    hf = {c: {"_type": "Image" if c == "image" else "Audio"} for c in columns
          if _KIND_OF_COLUMN[c] == "media"}
    metadata = {b"huggingface": json.dumps({"info": {"features": hf}}).encode()} if hf else None
    return pa.schema(fields, metadata=metadata)


class ShardFile:
    """One shard being written: ``add(example)`` per record, then ``close()``.

    ``size`` and ``sha256`` describe the bytes written, once closed.
    """

    def __init__(self, fmt: str, f, columns: Sequence[str], index: int = 0):
        if fmt not in FORMATS:
            raise ValueError(f"output format must be one of {', '.join(FORMATS)}, got {fmt!r}")
        self.fmt = fmt
        self._out = _Hashing(f)
        self._columns = list(columns)
        self._index = index
        self._n = 0
        self._rows: List[Dict[str, Any]] = []
        self._pending = 0
        self._parquet = None
        self._tar = None
        from transforms.write.shards import tfrecord_frame  # shards imports this module

        self._frame = tfrecord_frame
        if fmt == "parquet":
            import pyarrow.parquet as pq

            self._schema = arrow_schema(self._columns)
            self._parquet = pq.ParquetWriter(self._out, self._schema, compression="zstd",
                                             write_statistics=["id"])
        elif fmt == "webdataset":
            self._tar = tarfile.open(fileobj=self._out, mode="w|", format=tarfile.USTAR_FORMAT)

    def add(self, example: bytes) -> None:
        if self.fmt == "tfrecord":
            self._out.write(self._frame(example))
        elif self.fmt == "jsonl":
            row = example_row(example, self._columns)
            for c in ("image", "audio"):
                if row.get(c) is not None:
                    row[c] = {"bytes": base64.b64encode(row[c]["bytes"]).decode("ascii"),
                              "path": row[c]["path"]}
            self._out.write(json.dumps(row, ensure_ascii=False, separators=(",", ":"))
                            .encode("utf-8") + b"\n")
        elif self.fmt == "parquet":
            self._rows.append(example_row(example, self._columns))
            self._pending += len(example)
            if self._pending >= ROW_GROUP_BYTES:
                self._flush_rows()
        else:
            self._add_sample(example_row(example, self._columns))
        self._n += 1

    def _flush_rows(self) -> None:
        import pyarrow as pa

        if not self._rows:
            return
        table = pa.Table.from_pylist(self._rows, schema=self._schema)
        self._parquet.write_table(table, row_group_size=len(self._rows))
        self._rows, self._pending = [], 0

    def _member(self, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), 0, 0o644
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        self._tar.addfile(info, io.BytesIO(data))

    def _add_sample(self, row: Dict[str, Any]) -> None:
        key = f"{self._index:05d}_{self._n:08d}"
        meta = {}
        for column, value in row.items():
            if value is None:
                continue
            kind = _KIND_OF_COLUMN[column]
            if kind == "media":
                ext = value["path"].rsplit(".", 1)[-1] if "." in value["path"] else "bin"
                self._member(f"{key}.{ext}", value["bytes"])
            elif column in TEXT_COLUMNS:
                self._member(f"{key}.txt", value.encode("utf-8"))
            elif column == "label":
                self._member(f"{key}.cls", str(value).encode("ascii"))
                meta[column] = value
            else:
                meta[column] = value
        self._member(f"{key}.json", json.dumps(meta, ensure_ascii=False, sort_keys=True,
                                               separators=(",", ":")).encode("utf-8"))

    def close(self) -> None:
        if self._parquet is not None:
            self._flush_rows()
            self._parquet.close()
        if self._tar is not None:
            self._tar.close()

    @property
    def size(self) -> int:
        return self._out.size

    @property
    def sha256(self) -> str:
        return self._out.sha.hexdigest()


def open_shard(fmt: str, f, columns: Sequence[str], index: int = 0) -> ShardFile:
    return ShardFile(fmt, f, columns, index)


# --------------------------------------------------------------------------
# Reading back (verify): the ids of a shard, in order


class _Tap:
    """A read-only stream over ``read(n)``, for tarfile's stream mode."""

    def __init__(self, read):
        self.read = read


def read_shard_ids(fmt: str, read, open_seekable=None) -> Iterator[Tuple[int, int, str]]:
    """``(record number, byte offset or -1, id)`` of each record of a non-TFRecord shard.

    ``read(n)`` reads the file in order (verify hashes what it returns); Parquet
    also needs ``open_seekable()``, a seekable file of the same bytes. Raises
    ValueError naming the first record that cannot be read.
    """
    if fmt == "jsonl":
        yield from _jsonl_ids(read)
    elif fmt == "webdataset":
        yield from _tar_ids(read)
    elif fmt == "parquet":
        yield from _parquet_ids(open_seekable)
    else:
        raise ValueError(f"no id reader for format {fmt!r}")


def _jsonl_ids(read) -> Iterator[Tuple[int, int, str]]:
    buf, offset, n = b"", 0, 0
    while True:
        chunk = read(1 << 20)
        buf += chunk
        lines = buf.split(b"\n")
        buf = lines.pop() if chunk else b""
        if len(buf) > MAX_RECORD_BYTES:
            raise ValueError(f"record {n} at byte {offset}: a line longer than "
                             f"{MAX_RECORD_BYTES >> 20} MiB")
        if not chunk and lines and lines[-1] == b"":
            lines.pop()
        for line in lines:
            try:
                obj = json.loads(line)
            except ValueError as e:
                raise ValueError(f"record {n} at byte {offset}: not a JSON line ({e})") from None
            if not isinstance(obj, dict) or not isinstance(obj.get("id"), str):
                raise ValueError(f"record {n} at byte {offset}: no string id")
            yield n, offset, obj["id"]
            offset += len(line) + 1
            n += 1
        if not chunk:
            if buf:
                raise ValueError(f"record {n} at byte {offset}: last line not terminated")
            return


def _tar_ids(read) -> Iterator[Tuple[int, int, str]]:
    n, key, meta_id, start = 0, None, None, 0
    try:
        with tarfile.open(fileobj=_Tap(read), mode="r|") as tar:
            for member in tar:
                if not member.isfile():
                    raise ValueError(f"member {member.name!r} is not a regular file")
                base, _, ext = member.name.partition(".")
                if base != key:
                    if key is not None:
                        if meta_id is None:
                            raise ValueError(f"record {n} (key {key}): no .json with a string id")
                        yield n, start, meta_id
                        n += 1
                    key, meta_id, start = base, None, member.offset
                if ext == "json":
                    if member.size > MAX_RECORD_BYTES:
                        raise ValueError(f"record {n} (key {key}): a json member of "
                                         f"{member.size} bytes")
                    obj = json.loads(tar.extractfile(member).read())
                    if isinstance(obj, dict) and isinstance(obj.get("id"), str):
                        meta_id = obj["id"]
            if key is not None:
                if meta_id is None:
                    raise ValueError(f"record {n} (key {key}): no .json with a string id")
                yield n, start, meta_id
    except (tarfile.TarError, EOFError) as e:
        raise ValueError(f"not a readable tar after {n} records ({type(e).__name__}: {e})") from None


def _parquet_ids(open_seekable) -> Iterator[Tuple[int, int, str]]:
    import pyarrow.parquet as pq

    with open_seekable() as f:
        try:
            pf = pq.ParquetFile(f)
        except Exception as e:  # noqa: BLE001 - pyarrow raises several kinds; say which
            raise ValueError(f"not a readable Parquet file ({type(e).__name__}: {e})") from None
        if "id" not in pf.schema_arrow.names:
            raise ValueError("no id column")
        n = 0
        for group in range(pf.num_row_groups):
            for rid in pf.read_row_group(group, columns=["id"]).column("id").to_pylist():
                if not isinstance(rid, str):
                    raise ValueError(f"record {n}: no string id")
                yield n, -1, rid
                n += 1
