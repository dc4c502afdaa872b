"""Readers: JSONL (plain, .gz, .zst), Parquet, plain text, WARC/WET.

Pure cores (``iter_*`` functions) turn one *read task* -- a file, or a byte
range / row group of one -- into records and dead-letter entries; the Beam
side (:class:`ReadCorpus`) expands globs, plans read tasks so that large files
split across workers, reshuffles the tasks and runs the cores.

Provenance: every record keeps ``source`` (the file path) and ``position``
(the byte offset of a JSONL line in the decompressed stream, the row index of
a Parquet row, the stream offset of a WARC record, 0 for a text file). Records
without an id get ``"<relative path>#<position>"`` hashed into a stable id, so
the same file gives the same ids however it was split.

Every record also gets ``key``: :func:`transforms.accounting.record_key` of the
full path and the position, unique per input record even where two globs
hold files with the same relative name (ids need not be unique; keys are).

Formats are recognised by extension and confirmed by sniffing magic bytes: a
``.gz`` file that is not gzip (or a ``.jsonl`` that is) is read as what it
really is and counted under ``info.mislabelled_compression``. Nothing read is
ever unpickled or executed; no path or URL found inside a file is opened.
A UTF-8 byte-order mark at the start of a JSONL or text file is dropped.

Resources are bounded per file (:class:`ReaderConfig`): at most
``max_file_bytes`` decompressed bytes are read, a compressed stream that
inflates more than ``max_decompression_ratio`` times (checked once 16 MiB
have come out) stops, and a read task that has produced
``max_dead_per_file`` dead letters while more than ``max_broken_share`` of
its records were broken stops too. Whatever is left unread then counts as
one dead-letter record (``file_too_large``, ``decompression_bomb``,
``too_many_broken_records``). Blank lines cost no per-line work.

WARC records are parsed here, not trusted by their Content-Length: a block
must end at a record boundary (CR/LF, then the next ``WARC/`` version line or
the end of the file). A record whose length lies (larger than the cap, past
the end of the file, or not ending at a boundary) is one dead letter, and
reading resumes at the next line beginning with ``WARC/1.``, so every later
record is still read and counted. WARC positions are offsets in the
decompressed stream.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import numbers
import posixpath
import re
import time
import zlib
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple, Union

import apache_beam as beam
import orjson
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import accounting
from transforms.accounting import FILTERED, IN, INFO

__all__ = [
    "ReaderConfig",
    "ReadTask",
    "detect_format",
    "plan_reads",
    "read_task",
    "parse_json_record",
    "ReadLimitExceeded",
    "ReadCorpus",
]

JSONL, PARQUET, TEXT, WARC, UNKNOWN = "jsonl", "parquet", "text", "warc", "unknown"
GZIP, ZSTD, NONE = "gzip", "zstd", "none"

_EXT_FORMATS = {
    ".jsonl": JSONL, ".json": JSONL, ".ndjson": JSONL,
    ".parquet": PARQUET, ".pq": PARQUET,
    ".warc": WARC, ".wet": WARC, ".arc": WARC,
    ".txt": TEXT, ".text": TEXT, ".md": TEXT,
}
_EXT_COMPRESSION = {".gz": GZIP, ".gzip": GZIP, ".zst": ZSTD, ".zstd": ZSTD}

_GZIP_MAGIC = b"\x1f\x8b"
_ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"
_PARQUET_MAGIC = b"PAR1"

_HTML_SNIFF = re.compile(rb"^\s*(?:<!doctype\s+html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)
_HTML_SNIFF_STR = re.compile(r"^\s*(?:<!doctype\s+html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)


@dataclasses.dataclass(frozen=True)
class ReaderConfig:
    """How records are found in the input files, and the resources one file may take."""

    text_field: str = "text"
    id_field: str = "id"
    # Documents (and raw JSONL lines / files) larger than this are dead-lettered.
    max_doc_bytes: int = 1 << 20
    # Plain JSONL files are split into byte ranges of this size.
    chunk_bytes: int = 16 << 20
    # Decompressed bytes read from one file at most; the rest is one dead letter
    # (file_too_large).
    max_file_bytes: int = 64 << 30
    # Decompressed / compressed bytes allowed once 16 MiB have been decompressed;
    # beyond it the rest of the file is one dead letter (decompression_bomb).
    max_decompression_ratio: float = 100.0
    # A read task stops once it has produced this many dead letters while more
    # than max_broken_share of its records were broken; the rest of it is one
    # dead letter (too_many_broken_records).
    max_dead_per_file: int = 1000
    max_broken_share: float = 0.5

    def __post_init__(self):
        for name in ("max_doc_bytes", "chunk_bytes", "max_file_bytes", "max_dead_per_file"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
                raise ValueError(f"{name} must be a positive integer, got {value!r}")
        ratio = self.max_decompression_ratio
        if isinstance(ratio, bool) or not isinstance(ratio, numbers.Real) or not ratio >= 1:
            raise ValueError(f"max_decompression_ratio must be a number >= 1, got {ratio!r}")
        share = self.max_broken_share
        if isinstance(share, bool) or not isinstance(share, numbers.Real) or not 0 <= share <= 1:
            raise ValueError(f"max_broken_share must be a number in [0, 1], got {share!r}")


@dataclasses.dataclass(frozen=True)
class ReadTask:
    """One unit of reading work: a whole file, a byte range or a row group."""

    path: str
    fmt: str
    compression: str
    rel: str  # path relative to the glob's fixed prefix: the base of derived ids
    start: int = 0
    end: int = -1  # exclusive; -1 = to the end
    row_group: int = -1
    first_row: int = 0


# --------------------------------------------------------------------------
# Format detection and planning


def _split_ext(path: str) -> Tuple[str, str]:
    name = posixpath.basename(path).lower()
    compression = NONE
    for ext, comp in _EXT_COMPRESSION.items():
        if name.endswith(ext):
            compression = comp
            name = name[: -len(ext)]
            break
    fmt = UNKNOWN
    for ext, f in _EXT_FORMATS.items():
        if name.endswith(ext):
            fmt = f
            break
    return fmt, compression


def detect_format(path: str, head: bytes) -> Tuple[str, str, bool]:
    """(format, compression, mislabelled) from the name and the first bytes."""
    fmt, named = _split_ext(path)
    if head.startswith(_GZIP_MAGIC):
        sniffed = GZIP
    elif head.startswith(_ZSTD_MAGIC):
        sniffed = ZSTD
    else:
        sniffed = NONE
    if head.startswith(_PARQUET_MAGIC):
        return PARQUET, NONE, fmt not in (PARQUET, UNKNOWN)
    if head.startswith(b"WARC/"):
        return WARC, NONE, fmt not in (WARC, UNKNOWN) or named != NONE
    if fmt == WARC:
        # Compressed as a whole or per record: read through the sniffed decompressor.
        return WARC, sniffed, sniffed != named
    return fmt, sniffed, sniffed != named


def glob_root(pattern: str) -> str:
    """The directory part of a glob before its first wildcard."""
    cut = len(pattern)
    for ch in "*?[{":
        i = pattern.find(ch)
        if i != -1:
            cut = min(cut, i)
    prefix = pattern[:cut]
    if cut == len(pattern):  # a plain path: its directory
        return posixpath.dirname(prefix.rstrip("/")) + "/"
    return prefix[: prefix.rfind("/") + 1] if "/" in prefix else ""


def _open_raw(path: str):
    return FileSystems.open(path, compression_type=CompressionTypes.UNCOMPRESSED)


def _parquet_columns(pf, config: ReaderConfig) -> List[str]:
    """The columns the pipeline reads (only those are ever decompressed)."""
    names = set(pf.schema_arrow.names)
    return [c for c in (config.text_field, config.id_field, "url", "license") if c in names]


def _parquet_stop(meta, columns: List[str], config: ReaderConfig) -> Optional[Tuple[int, str, str]]:
    """(row group, reason, detail) of the first row group that takes the file over a limit.

    Sizes are the ones the row groups' metadata states for the columns read,
    summed over the file: the Parquet form of the byte and ratio limits.
    """
    index = {meta.schema.column(i).path: i for i in range(meta.num_columns)}
    wanted = [index[c] for c in columns if c in index]
    plain = packed = 0
    for g in range(meta.num_row_groups):
        rg = meta.row_group(g)
        for c in wanted:
            col = rg.column(c)
            plain += col.total_uncompressed_size
            packed += col.total_compressed_size
        if plain > config.max_file_bytes:
            return g, "file_too_large", (
                f"row groups from {g} on not read: {plain} decompressed bytes "
                f"exceed max_file_bytes={config.max_file_bytes}")
        if plain >= _RATIO_FLOOR and plain > config.max_decompression_ratio * max(packed, 1):
            return g, "decompression_bomb", (
                f"row groups from {g} on not read: {plain} bytes from {packed} compressed bytes "
                f"exceed max_decompression_ratio={config.max_decompression_ratio:g}")
    return None


def _plain_cut(path: str, limit: int, size: int, config: ReaderConfig) -> Tuple[int, bool]:
    """Where reading a plain file stops under ``limit``: (offset, whether anything follows).

    The offset is the end of the last line that ends within ``limit`` bytes
    (as for a compressed file), looked for in the line cap before it;
    "anything" is a non-blank byte after it.
    """
    window = min(limit, config.max_doc_bytes + 65536)
    with _open_raw(path) as f:
        f.seek(limit - window)
        before = f.read(window)
        nl = before.rfind(b"\n")
        cut = limit if nl == -1 else limit - window + nl + 1
        f.seek(cut)
        after = f.read(1 << 16)
    return cut, bool(after.strip()) or cut + len(after) < size


def plan_reads(path: str, size: int, rel: str, config: ReaderConfig) -> Iterator[Union[ReadTask, dict]]:
    """Split one file into read tasks (or yield a dead-letter entry).

    What a file holds beyond a limit is not planned: the lines of a plain
    JSONL file that do not end within ``max_file_bytes``, or the Parquet row
    groups from the one that crosses ``max_file_bytes`` or
    ``max_decompression_ratio``, are one dead-letter entry here.
    """
    try:
        with _open_raw(path) as f:
            head = f.read(8)
    except Exception as e:  # unreadable file: permissions, vanished, ...
        yield accounting.dead_letter_entry(path, 0, "unreadable_file", repr(e), unit="file")
        return
    fmt, compression, _ = detect_format(path, head)
    if fmt == JSONL and compression == NONE and size > min(config.chunk_bytes, config.max_file_bytes):
        readable, rest = size, False
        if size > config.max_file_bytes:
            try:
                readable, rest = _plain_cut(path, config.max_file_bytes, size, config)
            except Exception:
                readable, rest = config.max_file_bytes, True
        for start in range(0, readable, config.chunk_bytes):
            yield ReadTask(path, fmt, compression, rel, start, min(readable, start + config.chunk_bytes))
        if rest:
            yield accounting.dead_letter_entry(
                path, readable, "file_too_large",
                f"file of {size} bytes: lines from byte {readable} on not read "
                f"(max_file_bytes={config.max_file_bytes})")
        return
    if fmt == PARQUET:
        plan: List[Union[ReadTask, dict]] = []
        try:
            import pyarrow.parquet as pq

            with _open_raw(path) as f:
                pf = pq.ParquetFile(f)
                meta = pf.metadata
                stop = _parquet_stop(meta, _parquet_columns(pf, config), config)
            first = 0
            for i in range(meta.num_row_groups):
                if stop is not None and i == stop[0]:
                    plan.append(accounting.dead_letter_entry(path, first, stop[1], stop[2], unit="row"))
                    break
                plan.append(ReadTask(path, fmt, compression, rel, row_group=i, first_row=first))
                first += meta.row_group(i).num_rows
        except Exception:
            plan = []  # the read task reports the error with the file's position
        if plan:
            yield from plan
            return
    yield ReadTask(path, fmt, compression, rel)


# --------------------------------------------------------------------------
# Record construction


def derive_id(rel: str, position: int) -> str:
    return "d%016x" % accounting.stable_hash64(f"{rel}#{position}")


def _looks_html(text: str) -> bool:
    return bool(_HTML_SNIFF_STR.match(text[:512]))


def _classify_json_error(line: bytes, err: Exception) -> str:
    try:
        line.decode("utf-8")
    except UnicodeDecodeError:
        return "invalid_utf8"
    msg = str(err)
    if "surrogate" in msg:
        return "lone_surrogate"
    if "depth" in msg or "recursion" in msg:
        return "json_too_deep"
    return "malformed_json"


def parse_json_record(
    line: bytes, source: str, rel: str, position: int, config: ReaderConfig
) -> Tuple[Optional[dict], Optional[dict]]:
    """One JSONL line -> (record, None) or (None, dead-letter entry)."""
    if len(line) > config.max_doc_bytes + 65536:
        return None, accounting.dead_letter_entry(
            source, position, "too_large", f"line of {len(line)} bytes exceeds the cap", line
        )
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        return None, accounting.dead_letter_entry(
            source, position, _classify_json_error(line, e), str(e), line
        )
    if not isinstance(obj, dict):
        return None, accounting.dead_letter_entry(
            source, position, "not_an_object", f"got a JSON {type(obj).__name__}", line
        )
    return record_from_mapping(obj, source, rel, position, config, line)


def record_from_mapping(
    obj: Dict[str, Any], source: str, rel: str, position: int, config: ReaderConfig,
    raw: Any = None, unit: str = "byte",
) -> Tuple[Optional[dict], Optional[dict]]:
    raw = raw if raw is not None else obj
    text = obj.get(config.text_field)
    if text is None:
        reason = "missing_text" if config.text_field not in obj else "null_text"
        return None, accounting.dead_letter_entry(
            source, position, reason, f"field {config.text_field!r}", raw, unit)
    if not isinstance(text, str):
        return None, accounting.dead_letter_entry(
            source, position, "wrong_type",
            f"field {config.text_field!r} is {type(text).__name__}, expected string", raw, unit)
    if len(text) > config.max_doc_bytes or len(text.encode("utf-8", "surrogatepass")) > config.max_doc_bytes:
        return None, accounting.dead_letter_entry(
            source, position, "too_large",
            f"document of {len(text)} characters exceeds max_doc_bytes={config.max_doc_bytes}", text, unit)
    rid = obj.get(config.id_field)
    if rid is None or rid == "":
        rid = derive_id(rel, position)
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return None, accounting.dead_letter_entry(
            source, position, "wrong_type",
            f"field {config.id_field!r} is {type(rid).__name__}, expected string or integer", raw, unit)
    else:
        rid = str(rid)
    meta: Dict[str, Any] = {}
    for key in ("url", "license"):
        value = obj.get(key)
        if isinstance(value, str):
            meta[key] = value
    content_type = obj.get("content_type") or obj.get("mime_type")
    if isinstance(content_type, str):
        meta["html"] = "html" in content_type.lower()
    else:
        meta["html"] = _looks_html(text)
    return {"id": rid, "key": accounting.record_key(source, position), "text": text, "source": source,
            "position": position, "meta": meta}, None


# --------------------------------------------------------------------------
# Format cores. Each yields ("record", rec) / ("dead", entry) / ("filtered", reason)
# / ("info", name).

Event = Tuple[str, Any]


class TruncatedStream(EOFError):
    """A compressed stream ended in the middle of a frame."""


class _ZstdStream:
    """Zstandard frames decompressed one input piece at a time.

    zstandard's stream reader ends quietly when a file is cut inside a frame;
    this reader notices, so the loss is reported instead of silent. Input is
    fed in pieces sized so that one call gives about 1 MiB, starting at 32
    bytes (a zstd block can inflate 32768-fold): a bomb cannot allocate
    gigabytes before the decompression-ratio guard sees it.
    """

    _TARGET = 1 << 20

    def __init__(self, raw):
        import zstandard

        self._zstd = zstandard
        self._raw = raw
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._buf = memoryview(b"")
        self._at = 0
        self._carry = b""  # input after the end of a frame
        self._feed = 32
        self._fed = False

    def _piece(self):
        if self._carry:
            piece, self._carry = self._carry[:self._feed], self._carry[self._feed:]
            return piece
        if self._at >= len(self._buf):
            self._buf = memoryview(self._raw.read(1 << 16))
            self._at = 0
        piece = self._buf[self._at:self._at + self._feed]
        self._at += len(piece)
        return piece

    def read1(self, size: int = -1) -> bytes:
        while True:
            data = self._piece()
            if not data:
                if self._fed and not self._obj.eof:
                    raise TruncatedStream("zstd stream ends inside a frame")
                return b""
            self._fed = True
            out = self._obj.decompress(data)
            if out:
                self._feed = max(32, min(1 << 16, len(data) * self._TARGET // len(out)))
            if self._obj.eof:
                # Next frame (files may hold several, as zstd -T does).
                self._carry = self._obj.unused_data
                self._obj = self._zstd.ZstdDecompressor().decompressobj()
                self._fed = False
            if out:
                return out

    read = read1


def _decompressed(raw, compression: str):
    if compression == GZIP:
        return gzip.GzipFile(fileobj=raw, mode="rb")
    if compression == ZSTD:
        return _ZstdStream(raw)
    return raw


_STREAM_ERRORS = (EOFError, zlib.error, OSError, ValueError)
_BOM = b"\xef\xbb\xbf"
# The decompression-ratio guard applies once this much has been decompressed.
_RATIO_FLOOR = 16 << 20


class ReadLimitExceeded(Exception):
    """A file went over one of its :class:`ReaderConfig` limits; the rest is one dead letter."""

    def __init__(self, reason: str, detail: str):
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


class _Metered:
    """A raw (compressed) file that counts the bytes taken from it."""

    def __init__(self, raw):
        self._raw = raw
        self.consumed = 0

    def read(self, size: int = -1) -> bytes:
        data = self._raw.read(size)
        self.consumed += len(data)
        return data

    def read1(self, size: int = -1) -> bytes:
        data = getattr(self._raw, "read1", self._raw.read)(size)
        self.consumed += len(data)
        return data

    def readline(self, size: int = -1) -> bytes:
        data = self._raw.readline(size)
        self.consumed += len(data)
        return data

    def seek(self, *args):
        return self._raw.seek(*args)

    def tell(self):
        return self._raw.tell()


class _Limited:
    """The decompressed bytes of one read task, within the file's limits.

    Returns the bytes up to ``max_file_bytes`` (counted from ``start``, the
    task's offset in the file), then raises :class:`ReadLimitExceeded`; so
    does a compressed file with at least 16 MiB out that is past
    ``max_decompression_ratio``. ``on_bytes`` hears of every
    read: progress by bytes, whether or not they become records.
    """

    def __init__(self, stream, metered: _Metered, config: ReaderConfig, compressed: bool,
                 start: int = 0, check_size: bool = True,
                 on_bytes: Optional[Callable[[int], None]] = None):
        self._read = getattr(stream, "read1", stream.read)
        self._metered = metered
        self._config = config
        self._compressed = compressed
        self._start = start
        self._check_size = check_size
        self._on_bytes = on_bytes
        self._over: Optional[ReadLimitExceeded] = None
        self.total = 0

    def read1(self, size: int = -1) -> bytes:
        if self._over is not None:
            raise self._over
        data = self._read(size)
        if not data:
            return data
        config = self._config
        if self._check_size:
            room = config.max_file_bytes - self._start - self.total
            if len(data) > room:
                # The bytes within the limit first; the next read raises.
                self._over = ReadLimitExceeded(
                    "file_too_large", f"more than max_file_bytes={config.max_file_bytes} decompressed bytes")
                data = data[:max(room, 0)]
                if not data:
                    raise self._over
        self.total += len(data)
        if self._on_bytes is not None:
            self._on_bytes(len(data))
        if (self._compressed and self.total >= _RATIO_FLOOR
                and self.total > config.max_decompression_ratio * max(self._metered.consumed, 1)):
            raise ReadLimitExceeded(
                "decompression_bomb",
                f"{self.total} bytes out of {self._metered.consumed} compressed bytes: "
                f"over max_decompression_ratio={config.max_decompression_ratio:g}")
        return data

    read = read1


def _open_limited(raw, task: ReadTask, config: ReaderConfig, start: int = 0,
                  on_bytes: Optional[Callable[[int], None]] = None) -> _Limited:
    """``raw`` decompressed as ``task`` says, behind the file's limits."""
    metered = _Metered(raw)
    compressed = task.compression != NONE
    # A byte range of a plain file: plan_reads already kept it under max_file_bytes.
    check_size = compressed or task.end < 0
    return _Limited(_decompressed(metered, task.compression), metered, config, compressed,
                    start=start, check_size=check_size, on_bytes=on_bytes)


def _remainder_reason(err: Exception) -> Tuple[str, str]:
    """(reason, detail) of the dead letter for an unreadable remainder."""
    if isinstance(err, ReadLimitExceeded):
        return err.reason, err.detail
    return "truncated_or_corrupt_stream", f"{type(err).__name__}: {err}"


class _TooLong:
    """Marker for a line longer than the cap (its head is kept for the excerpt)."""

    def __init__(self, head: bytes, length: int):
        self.head = head
        self.length = length


_BLANK_RUN = re.compile(rb"[ \t\r\n]+")


def _iter_lines(stream, offset: int, limit: int, errors: tuple):
    """Yield ``(offset, line)`` for the non-blank lines of a byte stream, in 64 KB reads.

    Runs of blank lines are skipped in one step each (no per-line work).
    Lines longer than ``limit`` come as ``(offset, _TooLong)`` and are never
    held whole. When the stream fails (truncated or corrupt compression, a
    limit), every complete line before the failure is yielded first, then
    ``(offset, exc)`` for the unreadable remainder.
    """
    buf = bytearray()
    skipping = None  # (offset, head, length) of an over-long line being skipped
    # read1 returns what one step of decompression gives, so a failure loses
    # at most the last compressed block, not the whole read.
    read = getattr(stream, "read1", stream.read)
    blank_run = _BLANK_RUN.match
    while True:
        try:
            chunk = read(1 << 16)
        except errors as e:
            if skipping is not None:
                yield skipping[0], _TooLong(skipping[1], skipping[2] + len(buf))
                offset += len(buf)
            elif buf and not buf.strip():
                offset += len(buf)  # only blank bytes: nothing of a record was lost here
            yield offset, e
            return
        if not chunk:
            if skipping is not None:
                yield skipping[0], _TooLong(skipping[1], skipping[2] + len(buf))
            elif buf.strip():
                yield offset, bytes(buf)
            return
        buf += chunk
        start = 0
        while True:
            if skipping is None:
                m = blank_run(buf, start)
                if m is not None:
                    last_nl = buf.rfind(b"\n", start, m.end())
                    if last_nl != -1:
                        offset += last_nl + 1 - start
                        start = last_nl + 1
            nl = buf.find(b"\n", start)
            if nl == -1:
                break
            if skipping is not None:
                yield skipping[0], _TooLong(skipping[1], skipping[2] + nl + 1 - start)
                offset += nl + 1 - start
                skipping = None
            else:
                yield offset, bytes(buf[start:nl + 1])
                offset += nl + 1 - start
            start = nl + 1
        del buf[:start]
        if len(buf) > limit:
            if skipping is None:
                skipping = (offset, bytes(buf[:1024]), 0)
            skipping = (skipping[0], skipping[1], skipping[2] + len(buf))
            offset += len(buf)
            buf.clear()


def iter_jsonl(task: ReadTask, config: ReaderConfig,
               on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Event]:
    limit = config.max_doc_bytes + 65536
    errors = _STREAM_ERRORS + _zstd_error() + (ReadLimitExceeded,)
    with _open_raw(task.path) as raw:
        offset = 0
        if task.start > 0:
            # A line that starts before our range belongs to the previous range.
            raw.seek(task.start - 1)
            offset = task.start - 1 + len(raw.readline())
        stream = _open_limited(raw, task, config, start=offset, on_bytes=on_bytes)
        end = task.end if task.end >= 0 else None
        for position, line in _iter_lines(stream, offset, limit, errors):
            if end is not None and position >= end:
                return
            if isinstance(line, Exception):
                reason, detail = _remainder_reason(line)
                yield "dead", accounting.dead_letter_entry(
                    task.path, position, reason, f"{detail}; records before this offset were kept")
                return
            if isinstance(line, _TooLong):
                yield "dead", accounting.dead_letter_entry(
                    task.path, position, "too_large",
                    f"line of {line.length} bytes exceeds the cap", line.head)
                continue
            if position == 0 and line.startswith(_BOM):
                line = line[3:]  # a UTF-8 byte-order mark opening the file
            if not line.strip():
                continue
            rec, dead = parse_json_record(line, task.path, task.rel, position, config)
            if dead is not None:
                yield "dead", dead
            else:
                yield "record", rec


def _zstd_error() -> tuple:
    try:
        import zstandard

        return (zstandard.ZstdError,)
    except ImportError:  # pragma: no cover
        return ()


def iter_parquet(task: ReadTask, config: ReaderConfig,
                 on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Event]:
    import pyarrow.parquet as pq

    with _open_raw(task.path) as raw:
        try:
            pf = pq.ParquetFile(raw)
        except Exception as e:
            yield "dead", accounting.dead_letter_entry(
                task.path, 0, "unreadable_parquet", f"{type(e).__name__}: {e}", unit="file")
            return
        names = set(pf.schema_arrow.names)
        if config.text_field not in names:
            if task.row_group <= 0:
                yield "dead", accounting.dead_letter_entry(
                    task.path, 0, "missing_text_column",
                    f"no column {config.text_field!r} among {sorted(names)[:20]}", unit="file")
            return
        # Read only the columns the pipeline uses.
        columns = _parquet_columns(pf, config)
        groups = [task.row_group] if task.row_group >= 0 else list(range(pf.metadata.num_row_groups))
        # A task for one row group was planned under the limits; a whole file checks here.
        stop = _parquet_stop(pf.metadata, columns, config) if task.row_group < 0 else None
        first = task.first_row if task.row_group >= 0 else 0
        for g in groups:
            if stop is not None and g == stop[0]:
                yield "dead", accounting.dead_letter_entry(task.path, first, stop[1], stop[2], unit="row")
                return
            n_rows = pf.metadata.row_group(g).num_rows
            try:
                table = pf.read_row_group(g, columns=columns)
                cols = {c: table.column(c).to_pylist() for c in columns}
            except Exception as e:
                yield "dead", accounting.dead_letter_entry(
                    task.path, first, "corrupt_row_group",
                    f"row group {g} ({n_rows} rows): {type(e).__name__}: {e}", unit="row")
                first += n_rows
                continue
            if on_bytes is not None:
                on_bytes(table.nbytes)
            for i in range(n_rows):
                obj = {c: cols[c][i] for c in columns}
                rec, dead = record_from_mapping(
                    obj, task.path, task.rel, first + i, config, raw=repr(obj)[:400], unit="row")
                if dead is not None:
                    yield "dead", dead
                else:
                    yield "record", rec
            first += n_rows


_HTTP_CHARSET = re.compile(rb"charset=[\"']?([A-Za-z0-9_.:-]+)", re.I)


def _split_http(block: bytes) -> Tuple[int, bytes, bytes]:
    """(status, content-type header value, body) of an HTTP response block."""
    head, sep, body = block.partition(b"\r\n\r\n")
    if not sep:
        head, sep, body = block.partition(b"\n\n")
    if not sep:
        return 0, b"", block
    lines = head.split(b"\n")
    status = 0
    parts = lines[0].split()
    if len(parts) >= 2 and parts[1].isdigit():
        status = int(parts[1])
    content_type = b""
    for ln in lines[1:]:
        name, _, value = ln.partition(b":")
        if name.strip().lower() == b"content-type":
            content_type = value.strip()
    return status, content_type, body


def _decode_body(body: bytes, content_type: bytes) -> str:
    from resiliparse.parse.encoding import bytes_to_str, detect_encoding

    m = _HTTP_CHARSET.search(content_type)
    declared = m.group(1).decode("ascii", "ignore") if m else None
    if declared:
        try:
            return body.decode(declared)
        except (LookupError, UnicodeDecodeError):
            pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return bytes_to_str(body, detect_encoding(body))


_WARC_VERSION = b"WARC/1."  # what resynchronisation looks for at a line start
_WARC_DOCUMENTS = frozenset({"response", "resource", "conversion"})
_WARC_MAX_LINE = 64 << 10
_WARC_MAX_HEADER = 256 << 10
_BLANK = re.compile(rb"[ \t\r\n]*")


class _ByteReader:
    """A byte stream read through a look-ahead buffer: lines, blocks, push-back, scanning.

    ``offset`` is the stream offset of the next unread byte. The buffer holds
    at most the block asked for plus one 64 KB read. A stream failure is
    raised again by every later read, so it cannot be skipped by accident.
    """

    def __init__(self, stream):
        self._read = getattr(stream, "read1", stream.read)
        self._buf = bytearray()
        self._pos = 0
        self._eof = False
        self._error: Optional[BaseException] = None
        self.offset = 0

    def _fill(self) -> bool:
        if self._error is not None:
            raise self._error
        if self._eof:
            return False
        try:
            chunk = self._read(1 << 16)
        except Exception as e:
            self._error = e
            raise
        if not chunk:
            self._eof = True
            return False
        if self._pos:
            del self._buf[:self._pos]
            self._pos = 0
        self._buf += chunk
        return True

    def _available(self) -> int:
        return len(self._buf) - self._pos

    def _take(self, n: int) -> bytes:
        data = bytes(self._buf[self._pos:self._pos + n])
        self._pos += len(data)
        self.offset += len(data)
        return data

    def _skip(self, n: int) -> None:
        self._pos += n
        self.offset += n

    def peek(self, n: int) -> bytes:
        while self._available() < n and self._fill():
            pass
        return bytes(self._buf[self._pos:self._pos + n])

    def read(self, n: int) -> bytes:
        """``n`` bytes, fewer only at the end of the stream."""
        while self._available() < n and self._fill():
            pass
        return self._take(min(n, self._available()))

    def readline(self, limit: int) -> bytes:
        """The next line with its newline, cut at ``limit`` bytes; b"" at the end."""
        searched = 0
        while True:
            end = self._pos + min(limit, self._available())
            nl = self._buf.find(b"\n", self._pos + searched, end)
            if nl != -1:
                return self._take(nl + 1 - self._pos)
            searched = end - self._pos
            if searched >= limit or not self._fill():
                return self._take(min(limit, self._available()))

    def unread(self, data: bytes) -> None:
        del self._buf[:self._pos]
        self._buf[0:0] = data
        self._pos = 0
        self.offset -= len(data)

    def skip_blank(self) -> None:
        """Skip spaces, tabs and line breaks (any number, without holding them)."""
        while True:
            end = _BLANK.match(self._buf, self._pos).end()
            self._skip(end - self._pos)
            if self._available() or not self._fill():
                return

    def scan_to(self, marker: bytes, at_line_start: bool) -> int:
        """Skip to the next line beginning with ``marker`` (or to the end); the bytes skipped."""
        if at_line_start and self.peek(len(marker)) == marker:
            return 0
        pattern = b"\n" + marker
        skipped = 0
        while True:
            i = self._buf.find(pattern, self._pos)
            if i != -1:
                n = i + 1 - self._pos
                self._skip(n)
                return skipped + n
            n = max(0, self._available() - (len(pattern) - 1))
            self._skip(n)
            skipped += n
            if not self._fill():
                n = self._available()
                self._skip(n)
                return skipped + n


def _warc_version_line_in(block: bytes) -> Optional[int]:
    """Offset of the first line of ``block`` that begins with ``WARC/1.``."""
    if block.startswith(_WARC_VERSION):
        return 0
    i = block.find(b"\n" + _WARC_VERSION)
    return None if i == -1 else i + 1


def _read_warc_headers(reader: _ByteReader) -> Tuple[Dict[str, str], Optional[str]]:
    """Named fields up to the blank line: (headers, None) or (headers, what went wrong)."""
    headers: Dict[str, str] = {}
    size = 0
    last = None
    while True:
        line = reader.readline(_WARC_MAX_LINE)
        if not line:
            return headers, "eof"
        if not line.endswith(b"\n"):
            return headers, "eof" if len(line) < _WARC_MAX_LINE else "long_line"
        size += len(line)
        if size > _WARC_MAX_HEADER:
            return headers, "too_big"
        stripped = line.rstrip(b"\r\n")
        if not stripped.strip():
            return headers, None
        if line.startswith(_WARC_VERSION):
            reader.unread(line)
            return headers, "new_record"
        if line[:1] in (b" ", b"\t") and last is not None:  # folded continuation
            headers[last] += " " + stripped.strip().decode("utf-8", "replace")
            continue
        name, sep, value = stripped.partition(b":")
        if sep:
            last = name.strip().decode("latin-1").lower()
            headers[last] = value.strip().decode("utf-8", "replace")


def _at_record_boundary(reader: _ByteReader, errors: tuple) -> bool:
    """Whether the bytes after a block are blank then a ``WARC/`` line (or the end)."""
    try:
        window = reader.peek(128)
    except errors:
        return True  # the block is whole; the failure is reported by the next read
    blank = _BLANK.match(window).end()
    return blank == len(window) or window[blank:blank + 5] == b"WARC/"[:len(window) - blank]


_HEADER_PROBLEMS = {
    "long_line": "a header line over 64 KiB",
    "too_big": "headers over 256 KiB",
    "new_record": "headers end without a blank line: a new record starts",
}


def _warc_events(reader: _ByteReader, task: ReadTask, config: ReaderConfig,
                 pending: List[Optional[int]], errors: tuple) -> Iterator[Event]:
    """The records of a WARC stream; ``pending[0]``: start of a record not yet reported."""
    cap = config.max_doc_bytes * 4
    path = task.path
    while True:
        pending[0] = None
        reader.skip_blank()
        start = pending[0] = reader.offset
        line = reader.readline(_WARC_MAX_LINE)
        if not line:
            return
        if not line.startswith(b"WARC/"):
            skipped = reader.scan_to(_WARC_VERSION, line.endswith(b"\n"))
            yield "dead", accounting.dead_letter_entry(
                path, start, "corrupt_warc",
                f"no WARC record here: {len(line) + skipped} bytes skipped to the next WARC/1. line",
                line)
            continue
        headers, problem = _read_warc_headers(reader)
        if problem == "eof":
            yield "dead", accounting.dead_letter_entry(
                path, start, "truncated_warc_record", "the file ends inside the record's headers", line)
            return
        if problem is not None:
            pending[0] = None
            yield "dead", accounting.dead_letter_entry(
                path, start, "corrupt_warc", _HEADER_PROBLEMS[problem] + "; resumed at the next WARC/1. line",
                line)
            if problem != "new_record":
                reader.scan_to(_WARC_VERSION, problem == "too_big")
            continue
        declared = headers.get("content-length", "")
        if not (declared.isdigit() and len(declared) < 20):
            pending[0] = None
            yield "dead", accounting.dead_letter_entry(
                path, start, "corrupt_warc",
                f"missing or invalid Content-Length {declared[:40]!r}; resumed at the next WARC/1. line",
                line)
            reader.scan_to(_WARC_VERSION, True)
            continue
        length = int(declared)
        rtype = headers.get("warc-type", "").strip().lower()
        document = rtype in _WARC_DOCUMENTS
        if length > cap:
            # Never trusted: the next record is found by its version line, not by this length.
            pending[0] = None
            if document:
                yield "dead", accounting.dead_letter_entry(
                    path, start, "too_large",
                    f"WARC block of {length} bytes exceeds the cap ({cap} bytes, 4 x max_doc_bytes); "
                    "resumed at the next WARC/1. line")
            else:
                yield "filtered", "warc_non_document"
            reader.scan_to(_WARC_VERSION, True)
            continue
        block_start = reader.offset
        block = reader.read(length)
        if len(block) < length:
            at = _warc_version_line_in(block)
            if at is None:
                yield "dead", accounting.dead_letter_entry(
                    path, start, "truncated_warc_record", f"read {len(block)} of {length} bytes", block)
                return
            pending[0] = None
            yield "dead", accounting.dead_letter_entry(
                path, start, "warc_length_mismatch",
                f"Content-Length {length} runs past the end of the file; resumed at the WARC record "
                f"at offset {block_start + at}", block[:at])
            reader.unread(block[at:])
            continue
        if not _at_record_boundary(reader, errors):
            at = _warc_version_line_in(block)
            pending[0] = None
            yield "dead", accounting.dead_letter_entry(
                path, start, "warc_length_mismatch",
                f"the block of Content-Length {length} does not end at a record boundary; "
                "resumed at the next WARC/1. line", block)
            if at is not None:
                reader.unread(block[at:])
            else:
                reader.scan_to(_WARC_VERSION, False)
            continue
        pending[0] = None
        if not document:
            yield "filtered", "warc_non_document"
            continue
        url = headers.get("warc-target-uri", "")
        rid = headers.get("warc-record-id", "") or derive_id(task.rel, start)
        if rtype == "response":
            status, ctype, body = _split_http(block)
            if status and not 200 <= status < 300:
                yield "filtered", "warc_http_status"
                continue
            lowered = ctype.lower()
            if ctype and not (b"text/" in lowered or b"html" in lowered or b"xml" in lowered):
                yield "filtered", "warc_non_text"
                continue
            is_html = b"html" in lowered or (not ctype and bool(_HTML_SNIFF.match(body[:512])))
        else:
            body = block
            ctype = headers.get("content-type", "").encode("utf-8", "replace")
            is_html = b"html" in ctype.lower()
            if rtype == "resource" and not is_html and b"text" not in ctype.lower():
                yield "filtered", "warc_non_text"
                continue
        text = _decode_body(body, ctype)
        obj = {"text": text, "id": rid, "url": url}
        record, dead = record_from_mapping(obj, path, task.rel, start, config, raw=body)
        if dead is not None:
            yield "dead", dead
        else:
            record["meta"]["html"] = is_html
            yield "record", record


def iter_warc(task: ReadTask, config: ReaderConfig,
              on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Event]:
    """WARC/WET records (plain, or gzip/zstd as a whole or per record); see the module doc."""
    errors = _STREAM_ERRORS + _zstd_error() + (ReadLimitExceeded,)
    with _open_raw(task.path) as raw:
        reader = _ByteReader(_open_limited(raw, task, config, on_bytes=on_bytes))
        pending: List[Optional[int]] = [0]
        try:
            yield from _warc_events(reader, task, config, pending, errors)
        except errors as e:
            reason, detail = _remainder_reason(e)
            at = pending[0] if pending[0] is not None else reader.offset
            yield "dead", accounting.dead_letter_entry(
                task.path, at, reason, f"{detail}; records before this offset were kept")


def _is_binary(data: bytes) -> bool:
    sample = data[:8192]
    if not sample:
        return False
    if sample.count(b"\x00") > max(1, len(sample) // 100):
        return True
    controls = sum(sample.count(bytes([c])) for c in range(32) if c not in (9, 10, 12, 13))
    return controls > len(sample) // 10


def _read_upto(stream, size: int) -> bytes:
    """Up to ``size`` bytes from a stream whose reads may return less."""
    read = getattr(stream, "read1", stream.read)
    parts, n = [], 0
    while n < size:
        chunk = read(min(1 << 16, size - n))
        if not chunk:
            break
        parts.append(chunk)
        n += len(chunk)
    return b"".join(parts)[:size]


def iter_text(task: ReadTask, config: ReaderConfig,
              on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Event]:
    with _open_raw(task.path) as raw:
        stream = _open_limited(raw, task, config, on_bytes=on_bytes)
        try:
            data = _read_upto(stream, config.max_doc_bytes + 1)
        except (_STREAM_ERRORS + _zstd_error() + (ReadLimitExceeded,)) as e:
            reason, detail = _remainder_reason(e)
            yield "dead", accounting.dead_letter_entry(task.path, 0, reason, detail, unit="file")
            return
    if data.startswith(_BOM):
        data = data[3:]
    if _is_binary(data):
        yield "dead", accounting.dead_letter_entry(
            task.path, 0, "binary_file", "NUL or control bytes: not a text file", data, unit="file")
        return
    if len(data) > config.max_doc_bytes:
        yield "dead", accounting.dead_letter_entry(
            task.path, 0, "too_large", f"file exceeds max_doc_bytes={config.max_doc_bytes}", data, unit="file")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        yield "dead", accounting.dead_letter_entry(task.path, 0, "invalid_utf8", str(e), data, unit="file")
        return
    obj = {"text": text}
    record, dead = record_from_mapping(obj, task.path, task.rel, 0, config, raw=data, unit="file")
    yield ("dead", dead) if dead is not None else ("record", record)


_READERS = {JSONL: iter_jsonl, PARQUET: iter_parquet, WARC: iter_warc, TEXT: iter_text}


def _stop_when_broken(events: Iterator[Event], task: ReadTask, config: ReaderConfig) -> Iterator[Event]:
    """Pass a task's events on until too many of its records are broken.

    Once the task has produced ``max_dead_per_file`` dead letters while more
    than ``max_broken_share`` of its records so far were broken, the next
    record (or dead letter) and everything after it are not read: they are
    one dead letter, ``too_many_broken_records``, at that record's position.
    Two counters, whatever the length of the file.
    """
    seen = dead = 0
    tripped = False
    for kind, value in events:
        if kind == "record" or kind == "dead":
            if tripped:
                close = getattr(events, "close", None)
                if close is not None:
                    close()
                yield "dead", accounting.dead_letter_entry(
                    task.path, value["position"], "too_many_broken_records",
                    f"{dead} of the first {seen} records were broken (max_dead_per_file="
                    f"{config.max_dead_per_file}, max_broken_share={config.max_broken_share:g}); "
                    "the rest of the file was not read",
                    unit=value.get("unit") or ("row" if task.fmt == PARQUET else "byte"))
                return
            seen += 1
            if kind == "dead":
                dead += 1
                tripped = dead >= config.max_dead_per_file and dead > config.max_broken_share * seen
        elif kind == "filtered":
            seen += 1
        yield kind, value


def read_task(task: ReadTask, config: ReaderConfig,
              on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Event]:
    """Run the right core for a task; unknown formats become one dead letter.

    ``on_bytes(n)`` hears of every read from the file (progress by bytes
    read, blank or not). The task stops early when too many of its records
    are broken (:func:`_stop_when_broken`).
    """
    reader = _READERS.get(task.fmt)
    if reader is None:
        try:
            with _open_raw(task.path) as f:
                head = f.read(200)
        except Exception:
            head = b""
        yield "dead", accounting.dead_letter_entry(
            task.path, 0, "unknown_format",
            "not JSONL, Parquet, WARC/WET or text (by extension and content)", head, unit="file")
        return
    try:
        yield from _stop_when_broken(reader(task, config, on_bytes), task, config)
    except Exception as e:  # last line of defence: never crash the run
        yield "dead", accounting.dead_letter_entry(
            task.path, task.start, "read_error", f"{type(e).__name__}: {e}", unit="file")


# --------------------------------------------------------------------------
# Beam transforms


class _ExpandGlob(beam.DoFn):
    def process(self, pattern: str):
        root = glob_root(pattern)
        for match in FileSystems.match([pattern])[0].metadata_list:
            path = match.path
            rel = path[len(root):] if root and path.startswith(root) else posixpath.basename(path)
            yield {"path": path, "size": match.size_in_bytes, "mtime": match.last_updated_in_seconds,
                   "rel": rel}


class _PlanReads(accounting.CountingDoFn):
    def __init__(self, config: ReaderConfig):
        super().__init__()
        self._config = config

    def process(self, file_info: dict):
        for item in plan_reads(file_info["path"], file_info["size"], file_info["rel"], self._config):
            if isinstance(item, dict):
                self.count(IN, "records")
                yield self.dead(item)
            else:
                yield item


class _Progress:
    """A log line every ``every`` seconds: records, MB read, MB/s, elapsed (per worker).

    Progress is in bytes read from the files (decompressed), so a file that
    yields few records (blank lines, broken lines) still shows it moving.
    """

    def __init__(self, every: float = 10.0):
        self._start = self._last = time.monotonic()
        self._records = 0
        self._bytes = 0
        self._every = every

    def record(self) -> None:
        self._records += 1

    def bytes_read(self, n: int) -> None:
        self._bytes += n
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            elapsed = now - self._start
            logging.getLogger("beamtrain.progress").warning(
                "read %d records, %.1f MB, %.2f MB/s, %.0f s elapsed", self._records,
                self._bytes / 1e6, self._bytes / 1e6 / max(elapsed, 1e-9), elapsed)


class _ReadTasks(accounting.CountingDoFn):
    def __init__(self, config: ReaderConfig):
        super().__init__()
        self._config = config

    def setup(self):
        self._progress = _Progress()

    def process(self, task: ReadTask):
        # time spent reading, not in the fused steps each yield runs
        own, start = 0.0, time.perf_counter()
        for item in self._read(task):
            own += time.perf_counter() - start
            yield item
            start = time.perf_counter()
        self.time("read", own + time.perf_counter() - start)

    def _read(self, task: ReadTask):
        if task.start == 0 and task.row_group <= 0:
            # Tell the user when a file's name lies about its compression.
            try:
                with _open_raw(task.path) as f:
                    head = f.read(8)
                if detect_format(task.path, head)[2]:
                    self.count(INFO, "mislabelled_compression")
            except Exception:
                pass
        for kind, value in read_task(task, self._config, self._progress.bytes_read):
            if kind == "info":
                self.count(INFO, value)
                continue
            self.count(IN, "records")
            if kind == "record":
                self._progress.record()
                yield value
            elif kind == "dead":
                yield self.dead(value)
            else:
                self.count(FILTERED, value)


class ReadCorpus(beam.PTransform):
    """Glob patterns -> records, with dead letters and counts on side outputs.

    Returns a ``DoOutputsTuple`` with ``records`` (main), ``dead``, ``counts``
    and ``files`` (one fingerprint dict per matched input file).
    """

    def __init__(self, patterns: List[str], config: ReaderConfig = ReaderConfig()):
        super().__init__()
        if not patterns:
            raise ValueError("ReadCorpus needs at least one input pattern")
        self._patterns = list(patterns)
        self._config = config

    def expand(self, pbegin):
        files = (
            pbegin
            | "Patterns" >> beam.Create(self._patterns)
            | "ExpandGlobs" >> beam.ParDo(_ExpandGlob())
        )
        planned = files | "PlanReads" >> beam.ParDo(_PlanReads(self._config)).with_outputs(
            accounting.DEAD, accounting.COUNTS, main="tasks")
        read = (
            planned.tasks
            | "SpreadTasks" >> beam.Reshuffle()
            | "ReadTasks" >> beam.ParDo(_ReadTasks(self._config)).with_outputs(
                accounting.DEAD, accounting.COUNTS, main="records")
        )
        dead = (planned[accounting.DEAD], read[accounting.DEAD]) | "MergeReadDead" >> beam.Flatten()
        counts = (planned[accounting.COUNTS], read[accounting.COUNTS]) | "MergeReadCounts" >> beam.Flatten()
        return {"records": read.records, "dead": dead, "counts": counts, "files": files}
