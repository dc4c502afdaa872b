"""Check a finished output directory against its manifest, byte for byte.

    python -m beam_pipelines.verify DIR

re-reads every shard that ``DIR/manifest.json`` lists and checks:

* every path verify reads is a regular file inside DIR: a manifest path that
  is absolute, names a URL, or has a ``..`` component is refused, and so (on
  a local disk) is a symlink that resolves outside DIR and anything that is
  not a regular file (device, fifo, directory, socket); each is reported,
  naming the path, without opening it. On other filesystems (``gs://``) only
  the first, lexical, checks apply;
* the file exists, and its size and sha256 are the manifest's;
* its TFRecord framing (8-byte little-endian length, masked CRC-32C of the
  length, data, masked CRC-32C of the data) is intact, every CRC checked, and
  it holds the manifest's number of records;
* every record belongs where it is: its id feature (``id``, or ``image/id``
  for images), less a ``#dupN`` suffix (:func:`transforms.write.shards.placement_id`),
  hashes to the file's split (``config.writer.validation_fraction``) and to
  its shard of the file's ``-of-N`` (:func:`transforms.write.shards.split_of`,
  :func:`transforms.write.shards.shard_of`): swapped shards or splits fail;
* shard paths are ``data/SPLIT-NNNNN-of-NNNNN.tfrecord`` and agree with their
  entry's split; each split has one N and all of its shards 0..N-1; ``train``
  is there, and ``validation`` exactly when validation_fraction is above 0;
* ``DIR/data/`` holds no file the manifest does not list;
* the shards' records add up to stats.json's ``records_out`` (and per split to
  ``records_out_by_split``), and stats.json's accounting identity holds:
  ``records_in == records_out + sum(filtered) + sum(duplicates) + sum(dead_letter)``;
* ``COMPLETED`` exists and names the manifest's dataset_version;
* ``config_sha256`` (in manifest.json and in COMPLETED) is the sha256 of
  ``writers.json_dumps(manifest["config"])``, and COMPLETED's
  ``content_sha256`` is the manifest's; a dataset with neither digest (an
  older beamtrain) gets a warning, not a failure;
* the tokenizer's sha256 is the manifest's, when one is listed, and
  ``content_sha256`` is the digest of the listed shards and tokenizer;
* shards of other formats (``config.writer.output_format``: parquet, jsonl,
  webdataset; :mod:`transforms.write.formats`) are read back the same way:
  their name ends in the format's extension, every record has a string id that
  hashes to the file's split and shard, and the count, size and sha256 are the
  manifest's;
* the TFDS metadata beside TFRecord shards is there: ``features.json`` and
  ``dataset_info.json``, whose splits' shard lengths and sizes are the
  manifest's (splits without records are left out of it).

Shards are read streaming (one record in memory at a time), so verify never
hangs and its memory does not grow with the data.

Prints ``OK: N shards, M records, version V`` and exits 0 (warnings, if any,
go to stderr as ``WARN ...`` lines first), or prints one line per problem
(``FAIL data/train-00001-of-00004.tfrecord: truncated record at byte 12345``)
and a ``FAILED: K problems in DIR`` line on stderr and exits 1. Works on any
Beam filesystem path (gs://..., local). From Python: :func:`verify` returns
the list of problems (and appends warnings to the list it is given).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import re
import stat
import struct
import sys
from typing import Any, Callable, Dict, List, Optional, Tuple

import google_crc32c
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems
from apache_beam.io.localfilesystem import LocalFileSystem

from transforms.write import formats
from transforms.write import shards as writers
from transforms.write.finalize import config_digest

__all__ = ["verify", "check_shard", "example_id", "path_problem", "summary", "main",
           "NO_CONFIG_DIGEST"]

_BLOCK = 1 << 20
NO_CONFIG_DIGEST = "no config digest (written by an older beamtrain)"
_SHARD_NAME = re.compile(
    r"data/(?P<split>[^/\\]+)-(?P<index>[0-9]{5,})-of-(?P<n>[0-9]{5,})\.(?P<ext>[a-z]+)")
_MAX_LISTED = 10  # missing shards named one by one, then counted


def _masked_crc(crc: int) -> int:
    return (((crc >> 15) | (crc << 17)) + 0xA282EAD8) & 0xFFFFFFFF


def _open(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _size_of(path: str) -> Optional[int]:
    try:
        matches = FileSystems.match([path])[0].metadata_list
    except Exception:
        return None
    return matches[0].size_in_bytes if matches else None


def _exists(path: str) -> bool:
    try:
        return FileSystems.exists(path)
    except Exception:
        return False


def _is_local(path: str) -> bool:
    """Whether ``path`` is on the local disk (raises ValueError for an unknown scheme)."""
    return isinstance(FileSystems.get_filesystem(path), LocalFileSystem)


def _shard_name(split: str, index: int, n: int, ext: str = "tfrecord") -> str:
    return f"data/{split}-{index:05d}-of-{n:05d}.{ext}"


# --------------------------------------------------------------------------
# Confinement: verify reads only regular files inside the output folder


def path_problem(rel: Any) -> Optional[str]:
    """Why a manifest path may not be read (lexical checks, any filesystem), or None."""
    if not isinstance(rel, str) or not rel:
        return "not a relative path"
    if "\0" in rel:
        return "path contains a NUL byte"
    if "://" in rel or rel.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", rel):
        return "absolute path (manifest paths are relative to the output folder)"
    if ".." in re.split(r"[/\\]", rel):
        return "path has a '..' component (leaves the output folder)"
    return None


def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "directory"), (stat.S_ISFIFO, "fifo"),
                       (stat.S_ISCHR, "character device"), (stat.S_ISBLK, "block device"),
                       (stat.S_ISSOCK, "socket"), (stat.S_ISLNK, "symlink")):
        if test(mode):
            return name
    return "special file"


def _open_regular(path: str):
    """Open a local regular file for reading; OSError for anything else.

    ``O_NONBLOCK`` keeps a fifo swapped in after the check from blocking the
    open, and the ``fstat`` of the opened descriptor refuses it.
    """
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(path, flags)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(f"not a regular file ({_kind(st.st_mode)})")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


class _Folder:
    """The output folder: which of its paths verify may read, and reading them."""

    def __init__(self, out: str):
        self.out = out
        self.local = _is_local(out)
        self.root = os.path.realpath(out) if self.local else ""

    def full(self, rel: str) -> str:
        return FileSystems.join(self.out, rel)

    def check(self, rel: Any) -> Tuple[Optional[int], Optional[str]]:
        """``(size or None, None)`` when ``rel`` may be read, else ``(None, why)``; why is
        ``"missing"`` when nothing is there. Opens nothing."""
        problem = path_problem(rel)
        if problem:
            return None, problem
        full = self.full(rel)
        if not self.local:
            size = _size_of(full)
            if size is None and not _exists(full):
                return None, "missing"
            return size, None
        real = os.path.realpath(full)
        if real != self.root and not real.startswith(self.root.rstrip(os.sep) + os.sep):
            return None, f"symlink resolves outside the output folder (to {real})"
        try:
            st = os.stat(real)
        except FileNotFoundError:
            return None, "missing"
        except OSError as e:
            return None, f"unreadable ({type(e).__name__}: {e.strerror or e})"
        if not stat.S_ISREG(st.st_mode):
            return None, f"not a regular file ({_kind(st.st_mode)})"
        return st.st_size, None

    def open(self, rel: str):
        """Open a path :meth:`check` accepted."""
        if not self.local:
            return _open(self.full(rel))
        return _open_regular(os.path.realpath(self.full(rel)))

    def data_entries(self) -> List[str]:
        """``data/NAME`` of everything in DIR/data/ (names only; nothing is opened)."""
        data_dir = self.full("data")
        if self.local:
            try:
                return sorted("data/" + e.name for e in os.scandir(data_dir))
            except OSError:
                return []
        try:
            found = FileSystems.match([FileSystems.join(data_dir, "*")])[0].metadata_list
        except Exception:
            return []
        prefix = data_dir.rstrip("/") + "/"
        return sorted("data/" + m.path[len(prefix):] if m.path.startswith(prefix) else m.path
                      for m in found)


# --------------------------------------------------------------------------
# tf.train.Example: the id feature (our own encoding, writers.encode_example)


def _varint(buf: bytes, pos: int, end: int) -> Tuple[int, int]:
    return writers.read_varint(buf, pos, end)


def _fields(buf: bytes, pos: int, end: int) -> List[Tuple[int, int, int]]:
    """``(field number, start, end)`` of the length-delimited fields in ``buf[pos:end]``;
    other wire types are skipped. Nothing is copied; one-byte varints take a fast path."""
    out = []
    while pos < end:
        tag = buf[pos]
        if tag < 0x80:
            pos += 1
        else:
            tag, pos = _varint(buf, pos, end)
        number, wire = tag >> 3, tag & 7
        if number == 0:
            raise ValueError("field number 0")
        if wire == 2:
            if pos >= end:
                raise ValueError("truncated field")
            n = buf[pos]
            if n < 0x80:
                pos += 1
            else:
                n, pos = _varint(buf, pos, end)
            if n > end - pos:
                raise ValueError("truncated field")
            out.append((number, pos, pos + n))
            pos += n
        elif wire == 0:
            _, pos = _varint(buf, pos, end)
        elif wire in (1, 5):
            pos += 8 if wire == 1 else 4
            if pos > end:
                raise ValueError("truncated field")
        else:
            raise ValueError(f"unsupported wire type {wire}")
    return out


_ID_KEYS = (b"image/id", b"audio/id", b"id")  # a pair's Example has only image/id, a clip audio/id


def example_id(serialized: bytes) -> str:
    """The id feature (``image/id``, else ``id``) of a serialized tf.train.Example.

    ValueError when the bytes are not an Example or the id is not one UTF-8 string.
    """
    found: Dict[bytes, Tuple[int, int]] = {}
    end = len(serialized)
    for n1, s1, e1 in _fields(serialized, 0, end):            # Example.features = 1
        if n1 != 1:
            continue
        for n2, s2, e2 in _fields(serialized, s1, e1):        # Features.feature = 1 (map entry)
            if n2 != 1:
                continue
            # fast path, exact: an entry that is just a short key then its value
            if e2 - s2 >= 2 and serialized[s2] == 0x0A and serialized[s2 + 1] < 0x80:
                k_end = s2 + 2 + serialized[s2 + 1]
                if k_end < e2 and serialized[k_end] == 0x12:
                    n, v_start = _varint(serialized, k_end + 1, e2)
                    if v_start + n == e2:
                        key = serialized[s2 + 2:k_end]
                        if key in _ID_KEYS:
                            found[key] = (v_start, e2)
                        continue
            key, value = None, None
            for n3, s3, e3 in _fields(serialized, s2, e2):    # entry: key = 1, value = 2
                if n3 == 1:
                    key = serialized[s3:e3]
                elif n3 == 2:
                    value = (s3, e3)
            if key in _ID_KEYS:
                found[key] = value or (0, 0)
    key = next((k for k in _ID_KEYS if k in found), None)
    if key is None:
        raise ValueError("no id feature")
    s, e = found[key]
    values = []
    for n4, s4, e4 in _fields(serialized, s, e):              # Feature.bytes_list = 1
        if n4 != 1:
            raise ValueError(f"{key.decode()} is not a bytes feature")
        values += [serialized[s5:e5] for n5, s5, e5 in _fields(serialized, s4, e4) if n5 == 1]
    if len(values) != 1:
        raise ValueError(f"{key.decode()} has {len(values)} values, not 1")
    try:
        return values[0].decode("utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{key.decode()} is not UTF-8") from None


class _Placement:
    """Checks that each record of one shard hashes to that shard (split and index)."""

    def __init__(self, split: str, index: int, n: int, fraction: float,
                 shards_per_split: Dict[str, int], ext: str = "tfrecord"):
        self.split, self.index, self.n, self.fraction = split, index, n, fraction
        self.ext = ext
        self.shards_per_split = shards_per_split
        self.seen = self.misplaced = self.unreadable = 0
        self.first_misplaced = self.first_unreadable = ""

    def __call__(self, number: int, offset: int, data) -> None:
        """``data``: a serialized Example, or the record's id (other formats)."""
        self.seen += 1
        at = f"record {number}" + (f" at byte {offset}" if offset >= 0 else "")
        try:
            pid = writers.placement_id(data if isinstance(data, str) else example_id(data))
        except ValueError as e:
            self.unreadable += 1
            if not self.first_unreadable:
                self.first_unreadable = f"{at}: {e}"
            return
        split = writers.split_of(pid, self.fraction)
        if split == self.split:
            index = writers.shard_of(pid, self.n)
            if index == self.index:
                return
            where = _shard_name(split, index, self.n, self.ext)
        else:
            n = self.shards_per_split.get(split)
            where = (_shard_name(split, writers.shard_of(pid, n), n, self.ext) if n
                     else f"split {split!r}")
        self.misplaced += 1
        if not self.first_misplaced:
            self.first_misplaced = f"{at} belongs in {where}"

    def problems(self) -> List[str]:
        out, records = [], self.seen
        if self.unreadable:
            out.append(f"{self.unreadable} of {records} records have no readable id "
                       f"(first: {self.first_unreadable})")
        if self.misplaced:
            out.append(f"{self.misplaced} of {records} records do not hash to this shard "
                       f"(swapped or renamed shard? first: {self.first_misplaced})")
        return out


# --------------------------------------------------------------------------
# Shards


class _Reader:
    """Reads a file once, exactly, hashing every byte that goes by."""

    def __init__(self, f):
        self._f = f
        self.sha = hashlib.sha256()
        self.offset = 0

    def read(self, n: int) -> bytes:
        parts, want = [], n
        while want > 0:
            chunk = self._f.read(min(want, _BLOCK))
            if not chunk:
                break
            parts.append(chunk)
            want -= len(chunk)
        data = b"".join(parts)
        self.sha.update(data)
        self.offset += len(data)
        return data

    def drain(self) -> None:
        while self.read(_BLOCK):
            pass


OnRecord = Callable[[int, int, bytes], None]


def _read_shard(f, size: Optional[int], on_record: Optional[OnRecord] = None
                ) -> Tuple[Optional[int], int, str, List[str]]:
    problems: List[str] = []
    records = 0
    r = _Reader(f)
    while True:
        start = r.offset
        header = r.read(12)
        if not header:
            break
        if len(header) < 12:
            problems.append(f"truncated record at byte {start} (record {records}: "
                            f"{len(header)} of 12 header bytes)")
            break
        length_bytes, (length_crc,) = header[:8], struct.unpack("<I", header[8:])
        if _masked_crc(google_crc32c.value(length_bytes)) != length_crc:
            problems.append(f"corrupt record length at byte {start} (record {records}: "
                            "length CRC mismatch)")
            break
        (length,) = struct.unpack("<Q", length_bytes)
        if size is not None and start + 12 + length + 4 > size:
            problems.append(f"truncated record at byte {start} (record {records} needs "
                            f"{12 + length + 4} bytes, {size - start} left)")
            break
        crc, left, parts = 0, length, []
        while left:
            chunk = r.read(min(left, _BLOCK))
            if not chunk:
                break
            crc = google_crc32c.extend(crc, chunk)
            if on_record is not None:
                parts.append(chunk)
            left -= len(chunk)
        footer = r.read(4) if not left else b""
        if left or len(footer) < 4:
            problems.append(f"truncated record at byte {start} (record {records})")
            break
        if _masked_crc(crc) != struct.unpack("<I", footer)[0]:
            problems.append(f"corrupt record data at byte {start} (record {records}: "
                            "data CRC mismatch)")
            break
        if on_record is not None:
            on_record(records, start, b"".join(parts))
        records += 1
    broken = bool(problems)
    r.drain()
    return (None if broken else records), r.offset, r.sha.hexdigest(), problems


def check_shard(path: str, size: Optional[int] = None, on_record: Optional[OnRecord] = None
                ) -> Tuple[Optional[int], int, str, List[str]]:
    """Read one TFRecord file: ``(records or None when the framing is broken, bytes, sha256, problems)``.

    ``size`` (the file's size, when known) lets a corrupt length be reported
    as a truncation without reading past the end of the file. ``on_record``
    is called with ``(record number, byte offset, data)`` of every record
    whose CRCs check. A local path that is not a regular file is reported,
    not opened.
    """
    if _is_local(path):
        try:
            st = os.stat(path)
        except FileNotFoundError:
            return None, 0, hashlib.sha256().hexdigest(), ["missing"]
        if not stat.S_ISREG(st.st_mode):
            return None, 0, hashlib.sha256().hexdigest(), [f"not a regular file ({_kind(st.st_mode)})"]
        f = _open_regular(os.path.realpath(path))
        size = st.st_size if size is None else size
    else:
        f = _open(path)
    with f:
        return _read_shard(f, size, on_record)


def _read_other(fmt: str, folder: "_Folder", rel: str, on_record: Optional[OnRecord] = None
                ) -> Tuple[Optional[int], int, str, List[str]]:
    """A Parquet, JSON Lines or WebDataset shard: like :func:`check_shard` for TFRecord.

    Every byte is hashed in one streaming pass (Parquet reads its ``id`` column
    through a second, seekable open of the same file).
    """
    problems: List[str] = []
    records: Optional[int] = 0
    with folder.open(rel) as f:
        r = _Reader(f)
        try:
            for number, offset, rid in formats.read_shard_ids(fmt, r.read,
                                                              lambda: folder.open(rel)):
                if on_record is not None:
                    on_record(number, offset, rid)
                records += 1
        except ValueError as e:
            problems.append(f"unreadable {fmt} shard: {e}")
            records = None
        r.drain()
    return records, r.offset, r.sha.hexdigest(), problems


# --------------------------------------------------------------------------
# JSON files, stats, manifest


def _load_json(folder: _Folder, name: str, problems: List[str],
               missing: str = "missing") -> Optional[Any]:
    _, why = folder.check(name)
    if why:
        problems.append(f"{name}: {missing if why == 'missing' else why}")
        return None
    try:
        with folder.open(name) as f:
            return json.loads(f.read().decode("utf-8") or ("{}" if name == "COMPLETED" else ""))
    except Exception as e:
        problems.append(f"{name}: not readable JSON ({type(e).__name__}: {e})")
        return None


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_stats(stats: Any, problems: List[str]) -> Optional[Dict[str, Any]]:
    if not isinstance(stats, dict):
        problems.append("stats.json: not a JSON object")
        return None
    ok = True
    for key in ("records_in", "records_out"):
        if not _is_int(stats.get(key)):
            problems.append(f"stats.json: {key} missing or not an integer")
            ok = False
    for key in ("filtered", "duplicates", "dead_letter"):
        value = stats.get(key)
        if not isinstance(value, dict) or not all(_is_int(v) for v in value.values()):
            problems.append(f"stats.json: {key} missing or not a mapping of integers")
            ok = False
    if not ok:
        return None
    lost = sum(sum(stats[k].values()) for k in ("filtered", "duplicates", "dead_letter"))
    if stats["records_in"] != stats["records_out"] + lost:
        problems.append(
            f"stats.json: accounting identity broken: records_in {stats['records_in']} != "
            f"records_out {stats['records_out']} + filtered {sum(stats['filtered'].values())} + "
            f"duplicates {sum(stats['duplicates'].values())} + dead_letter "
            f"{sum(stats['dead_letter'].values())} (= {stats['records_out'] + lost})")
    elif (stats.get("accounting") or {}).get("holds") is False:
        problems.append("stats.json: accounting.holds is false")
    return stats


def _shard_entries(manifest: Dict[str, Any], problems: List[str]) -> List[Dict[str, Any]]:
    shards = manifest.get("shards")
    if not isinstance(shards, list):
        problems.append("manifest.json: shards missing or not a list")
        return []
    good, seen = [], set()
    for i, s in enumerate(shards):
        if not isinstance(s, dict) or not all(k in s for k in ("path", "split", "records",
                                                                 "bytes", "sha256")):
            problems.append(f"manifest.json: shards[{i}] lacks path/split/records/bytes/sha256")
            continue
        if not (isinstance(s["path"], str) and isinstance(s["split"], str)
                and isinstance(s["sha256"], str) and _is_int(s["records"])
                and _is_int(s["bytes"]) and s["records"] >= 0 and s["bytes"] >= 0):
            problems.append(f"manifest.json: shards[{i}] has a path/split/sha256 that is not a "
                            "string or records/bytes that are not counts")
            continue
        if s["path"] in seen:
            problems.append(f"manifest.json: {s['path']} listed twice")
            continue
        seen.add(s["path"])
        good.append(s)
    return good


def _validation_fraction(manifest: Dict[str, Any], problems: List[str]) -> Optional[float]:
    writer = (manifest.get("config") or {}).get("writer") if isinstance(
        manifest.get("config"), dict) else None
    fraction = writer.get("validation_fraction") if isinstance(writer, dict) else None
    if isinstance(fraction, (int, float)) and not isinstance(fraction, bool) and 0 <= fraction < 1:
        return float(fraction)
    problems.append("manifest.json: config.writer.validation_fraction missing or not in [0, 1) "
                    "(record placement not checked)")
    return None


def _output_format(manifest: Dict[str, Any], problems: List[str]) -> str:
    """config.writer.output_format (tfrecord when absent: written before formats existed)."""
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    writer = config.get("writer") if isinstance(config.get("writer"), dict) else {}
    fmt = writer.get("output_format", "tfrecord")
    if fmt not in formats.FORMATS:
        problems.append(f"manifest.json: config.writer.output_format {fmt!r} is not one of "
                        f"{', '.join(formats.FORMATS)} (read as tfrecord)")
        return "tfrecord"
    return fmt


def _check_layout(shards: List[Dict[str, Any]], fraction: Optional[float],
                  problems: List[str], ext: str = "tfrecord") -> Dict[str, Tuple[str, int, int]]:
    """Shard names, splits and complete ``-of-N`` sets; ``{path: (split, index, N)}``."""
    placed: Dict[str, Tuple[str, int, int]] = {}
    sets: Dict[str, Dict[int, set]] = {}
    for s in shards:
        rel = s["path"]
        m = _SHARD_NAME.fullmatch(rel)
        if not m:
            if not path_problem(rel):  # unsafe paths are reported once, by the shard check
                problems.append(f"{rel}: not a shard name (data/SPLIT-NNNNN-of-NNNNN.{ext})")
            continue
        split, index, n = m["split"], int(m["index"]), int(m["n"])
        if m["ext"] != ext:
            problems.append(f"{rel}: not a shard name (data/SPLIT-NNNNN-of-NNNNN.{ext}: the run "
                            f"wrote {ext} shards)")
            continue
        if index >= n or rel != _shard_name(split, index, n, ext):
            problems.append(f"{rel}: not a shard name (index {index} of {n})")
            continue
        if s["split"] != split:
            problems.append(f"{rel}: manifest.json says split {s['split']!r}, the file name "
                            f"says {split!r}")
        placed[rel] = (split, index, n)
        sets.setdefault(split, {}).setdefault(n, set()).add(index)
    for split, by_n in sorted(sets.items()):
        if len(by_n) > 1:
            problems.append(f"data/{split}-*.{ext}: split {split!r} mixes shard sets "
                            + ", ".join(f"-of-{n:05d}" for n in sorted(by_n)))
        for n, present in sorted(by_n.items()):
            absent = [i for i in range(n) if i not in present]
            for i in absent[:_MAX_LISTED]:
                problems.append(f"{_shard_name(split, i, n, ext)}: missing from manifest.json "
                                f"(split {split!r} lists {len(present)} of its {n} shards)")
            if len(absent) > _MAX_LISTED:
                problems.append(f"data/{split}-*-of-{n:05d}.{ext}: {len(absent) - _MAX_LISTED} "
                                "more shards missing from manifest.json")
    if fraction is not None:
        expected = {writers.TRAIN} | ({writers.VALIDATION} if fraction > 0 else set())
        for split in sorted(expected - set(sets)):
            problems.append(f"data/{split}-*.{ext}: split {split!r} has no shards in "
                            f"manifest.json (validation_fraction {fraction})")
        for split in sorted(set(sets) - expected):
            problems.append(f"data/{split}-*.{ext}: split {split!r} is not written with "
                            f"validation_fraction {fraction}")
    return placed


def _check_digests(manifest: Dict[str, Any], marker: Any, problems: List[str],
                   warnings: List[str]) -> None:
    """config_sha256 (manifest and COMPLETED) and COMPLETED's content_sha256."""
    marker = marker if isinstance(marker, dict) else None
    in_manifest = "config_sha256" in manifest
    in_marker = marker is not None and "config_sha256" in marker
    if not in_manifest and not in_marker:
        warnings.append(f"manifest.json: {NO_CONFIG_DIGEST}")
    else:
        if "config" not in manifest:
            problems.append("manifest.json: config missing (config_sha256 cannot be checked)")
        actual = config_digest(manifest.get("config"))
        if in_manifest and manifest["config_sha256"] != actual:
            problems.append(f"manifest.json: config_sha256 {manifest['config_sha256']} is not "
                            f"the digest of its config ({actual}): config edited?")
        if in_marker and marker["config_sha256"] != actual:
            problems.append(f"COMPLETED: config_sha256 {marker['config_sha256']}, the "
                            f"manifest's config digests to {actual} (config edited after the run?)")
        if marker is not None and in_manifest != in_marker:
            problems.append("manifest.json: config_sha256 missing (COMPLETED has one)" if in_marker
                            else "COMPLETED: config_sha256 missing (manifest.json has one)")
    if marker is not None and "content_sha256" in marker \
            and marker["content_sha256"] != manifest.get("content_sha256"):
        problems.append(f"COMPLETED: content_sha256 {marker['content_sha256']}, manifest.json "
                        f"says {manifest.get('content_sha256')}")


def _check_tfds(folder: _Folder, shards: List[Dict[str, Any]], problems: List[str]) -> None:
    """dataset_info.json and features.json are there, and describe the manifest's shards."""
    info = _load_json(folder, "dataset_info.json", problems,
                      missing="missing (the TFDS metadata beside the shards)")
    _load_json(folder, "features.json", problems,
               missing="missing (the TFDS features beside the shards)")
    if info is None:
        return
    expected: Dict[str, Tuple[List[int], int]] = {}
    for s in sorted(shards, key=lambda s: s["path"]):
        lengths, size = expected.get(s["split"], ([], 0))
        expected[s["split"]] = (lengths + [s["records"]], size + s["bytes"])
    expected = {k: v for k, v in expected.items() if sum(v[0])}  # TFDS omits empty splits
    try:
        got = {sp.get("name"): ([int(n) for n in sp.get("shardLengths", [])],
                                int(sp.get("numBytes", 0)))
               for sp in info.get("splits", [])}
    except (AttributeError, TypeError, ValueError) as e:
        problems.append(f"dataset_info.json: splits malformed ({type(e).__name__}: {e})")
        return
    for split in sorted(set(expected) | set(got), key=str):
        if expected.get(split) != got.get(split):
            problems.append(
                f"dataset_info.json: split {split!r} has shard lengths/bytes {got.get(split)}, "
                f"the manifest {expected.get(split)} (stale TFDS metadata?)")


# --------------------------------------------------------------------------
# verify


def verify(output_dir: str, warnings: Optional[List[str]] = None) -> List[str]:
    """Every problem found in ``output_dir`` (any Beam filesystem path), one line each; [] = OK.

    Warnings (not failures) are appended to ``warnings`` when a list is given.
    """
    problems: List[str] = []
    warnings = warnings if warnings is not None else []
    out = output_dir.rstrip("/") or output_dir
    try:
        folder = _Folder(out)
    except ValueError as e:
        return [f"{output_dir}: no Beam filesystem for this path ({e})"]

    manifest = _load_json(folder, "manifest.json", problems)
    if manifest is not None and not isinstance(manifest, dict):
        problems.append("manifest.json: not a JSON object")
        manifest = None
    stats = _load_json(folder, "stats.json", problems)
    if stats is not None:
        stats = _check_stats(stats, problems)

    marker = _load_json(folder, "COMPLETED", problems,
                        missing="missing (the run did not finish, or failed)")
    if marker is not None and not isinstance(marker, dict):
        problems.append("COMPLETED: not a JSON object")
    elif marker is not None and manifest is not None \
            and marker.get("dataset_version") != manifest.get("dataset_version"):
        problems.append(f"COMPLETED: dataset_version {marker.get('dataset_version')!r}, "
                        f"manifest.json says {manifest.get('dataset_version')!r}")

    if manifest is None:
        return problems
    _check_digests(manifest, marker, problems, warnings)

    shards = _shard_entries(manifest, problems)
    fraction = _validation_fraction(manifest, problems)
    fmt = _output_format(manifest, problems)
    ext = formats.EXTENSIONS.get(fmt, "tfrecord")
    placed = _check_layout(shards, fraction, problems, ext)
    shards_per_split = {split: n for split, _, n in placed.values()}
    total = 0
    by_split: Dict[str, int] = {}
    for s in shards:
        rel = s["path"]
        by_split[s["split"]] = by_split.get(s["split"], 0) + s["records"]
        total += s["records"]
        size, why = folder.check(rel)
        if why:
            problems.append(f"{rel}: {why}")
            continue
        placement = None
        if fraction is not None and rel in placed:
            placement = _Placement(*placed[rel], fraction, shards_per_split, ext)
        try:
            if fmt == "tfrecord":
                with folder.open(rel) as f:
                    records, nbytes, sha, framing = _read_shard(f, size, placement)
            else:
                records, nbytes, sha, framing = _read_other(fmt, folder, rel, placement)
        except Exception as e:
            problems.append(f"{rel}: unreadable ({type(e).__name__}: {e})")
            continue
        problems.extend(f"{rel}: {p}" for p in framing)
        if nbytes != s["bytes"]:
            problems.append(f"{rel}: size mismatch: {nbytes} bytes, manifest says {s['bytes']}")
        if sha != s["sha256"]:
            problems.append(f"{rel}: sha256 mismatch: {sha}, manifest says {s['sha256']}")
        if records is not None and records != s["records"]:
            problems.append(f"{rel}: record count mismatch: {records} records, "
                            f"manifest says {s['records']}")
        if placement is not None:
            problems.extend(f"{rel}: {p}" for p in placement.problems())

    listed = {s["path"] for s in shards}
    for rel in folder.data_entries():
        if rel not in listed:
            problems.append(f"{rel}: extra file in data/, not listed in manifest.json")

    if stats is not None:
        if total != stats["records_out"]:
            problems.append(f"records: the manifest's shards hold {total}, stats.json "
                            f"records_out is {stats['records_out']}")
        per_split = stats.get("records_out_by_split")
        if isinstance(per_split, dict) and {k: v for k, v in per_split.items() if v} != \
                {k: v for k, v in by_split.items() if v}:
            problems.append(f"records: per split the shards hold {by_split}, stats.json "
                            f"records_out_by_split is {per_split}")
    if "records_out" in manifest and manifest["records_out"] != total:
        problems.append(f"manifest.json: records_out {manifest['records_out']}, its shards hold {total}")

    tokenizer = manifest.get("tokenizer")
    if tokenizer and not isinstance(tokenizer, dict):
        problems.append("manifest.json: tokenizer is not an object")
        tokenizer = None
    if tokenizer:
        rel = tokenizer.get("path", "")
        _, why = folder.check(rel)
        if why:
            problems.append(f"{rel}: tokenizer missing" if why == "missing" else f"{rel}: {why}")
        else:
            try:
                with folder.open(rel) as f:
                    r = _Reader(f)
                    r.drain()
            except Exception as e:
                problems.append(f"{rel}: unreadable ({type(e).__name__}: {e})")
            else:
                if r.sha.hexdigest() != tokenizer.get("sha256"):
                    problems.append(f"{rel}: tokenizer sha256 mismatch: {r.sha.hexdigest()}, "
                                    f"manifest says {tokenizer.get('sha256')}")

    if "content_sha256" in manifest:
        content = hashlib.sha256()
        for s in manifest.get("shards") or []:
            if isinstance(s, dict):
                content.update(f"{s.get('path')}:{s.get('sha256')}\n".encode())
        if tokenizer:
            content.update(str(tokenizer.get("sha256")).encode())
        if content.hexdigest() != manifest["content_sha256"]:
            problems.append("manifest.json: content_sha256 is not the digest of the listed "
                            "shards and tokenizer (manifest edited?)")

    if fmt == "tfrecord":  # TFDS metadata is written for TFRecord shards only
        _check_tfds(folder, shards, problems)
    return problems


def summary(output_dir: str) -> str:
    """The OK line of a verified directory."""
    folder = _Folder(output_dir.rstrip("/") or output_dir)
    with folder.open("manifest.json") as f:
        manifest = json.loads(f.read().decode("utf-8"))
    shards = manifest["shards"]
    return (f"OK: {len(shards)} shards, {sum(s['records'] for s in shards)} records, "
            f"version {manifest.get('dataset_version')}")


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m beam_pipelines.verify",
        description="Check an output directory's shards, stats and manifest.")
    parser.add_argument("output_dir", help="Output directory (local or any Beam filesystem).")
    args = parser.parse_args(argv)
    warnings: List[str] = []
    problems = verify(args.output_dir, warnings)
    for w in warnings:
        print(f"WARN {w}", file=sys.stderr)
    if problems:
        for p in problems:
            print(f"FAIL {p}", file=sys.stderr)
        print(f"FAILED: {len(problems)} problem{'s' * (len(problems) != 1)} in {args.output_dir}",
              file=sys.stderr)
        return 1
    print(summary(args.output_dir))
    return 0


if __name__ == "__main__":
    sys.exit(main())
