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

Formats are recognised by extension and confirmed by sniffing magic bytes: a
``.gz`` file that is not gzip (or a ``.jsonl`` that is) is read as what it
really is and counted under ``info.mislabelled_compression``. Nothing read is
ever unpickled or executed; no path or URL found inside a file is opened.
"""

from __future__ import annotations

import dataclasses
import gzip
import logging
import time
import posixpath
import re
import zlib
from typing import Any, Dict, Iterator, List, Optional, Tuple, Union

import apache_beam as beam
import orjson
from apache_beam.io.filesystem import CompressionTypes
from apache_beam.io.filesystems import FileSystems

from transforms import common
from transforms.common import FILTERED, IN, INFO

__all__ = [
    "ReaderConfig",
    "ReadTask",
    "detect_format",
    "plan_reads",
    "read_task",
    "parse_json_record",
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
    """How records are found in the input files."""

    text_field: str = "text"
    id_field: str = "id"
    # Documents (and raw JSONL lines / files) larger than this are dead-lettered.
    max_doc_bytes: int = 1 << 20
    # Plain JSONL files are split into byte ranges of this size.
    chunk_bytes: int = 16 << 20

    def __post_init__(self):
        if self.max_doc_bytes <= 0:
            raise ValueError(f"max_doc_bytes must be positive, got {self.max_doc_bytes}")
        if self.chunk_bytes <= 0:
            raise ValueError(f"chunk_bytes must be positive, got {self.chunk_bytes}")


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
        # fastwarc detects gzip/zstd members itself.
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


def plan_reads(path: str, size: int, rel: str, config: ReaderConfig) -> Iterator[Union[ReadTask, dict]]:
    """Split one file into read tasks (or yield a dead-letter entry)."""
    try:
        with _open_raw(path) as f:
            head = f.read(8)
    except Exception as e:  # unreadable file: permissions, vanished, ...
        yield common.dead_letter_entry(path, 0, "unreadable_file", repr(e), unit="file")
        return
    fmt, compression, _ = detect_format(path, head)
    if fmt == JSONL and compression == NONE and size > config.chunk_bytes:
        for start in range(0, size, config.chunk_bytes):
            yield ReadTask(path, fmt, compression, rel, start, min(size, start + config.chunk_bytes))
        return
    if fmt == PARQUET:
        try:
            import pyarrow.parquet as pq

            with _open_raw(path) as f:
                meta = pq.ParquetFile(f).metadata
            first = 0
            for i in range(meta.num_row_groups):
                yield ReadTask(path, fmt, compression, rel, row_group=i, first_row=first)
                first += meta.row_group(i).num_rows
            return
        except Exception:
            pass  # the read task reports the error with the file's position
    yield ReadTask(path, fmt, compression, rel)


# --------------------------------------------------------------------------
# Record construction


def derive_id(rel: str, position: int) -> str:
    return "d%016x" % common.stable_hash64(f"{rel}#{position}")


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
        return None, common.dead_letter_entry(
            source, position, "too_large", f"line of {len(line)} bytes exceeds the cap", line
        )
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError as e:
        return None, common.dead_letter_entry(
            source, position, _classify_json_error(line, e), str(e), line
        )
    if not isinstance(obj, dict):
        return None, common.dead_letter_entry(
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
        return None, common.dead_letter_entry(
            source, position, reason, f"field {config.text_field!r}", raw, unit)
    if not isinstance(text, str):
        return None, common.dead_letter_entry(
            source, position, "wrong_type",
            f"field {config.text_field!r} is {type(text).__name__}, expected string", raw, unit)
    if len(text) > config.max_doc_bytes or len(text.encode("utf-8", "surrogatepass")) > config.max_doc_bytes:
        return None, common.dead_letter_entry(
            source, position, "too_large",
            f"document of {len(text)} characters exceeds max_doc_bytes={config.max_doc_bytes}", text, unit)
    rid = obj.get(config.id_field)
    if rid is None or rid == "":
        rid = derive_id(rel, position)
    elif isinstance(rid, bool) or not isinstance(rid, (str, int)):
        return None, common.dead_letter_entry(
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
    return {"id": rid, "text": text, "source": source, "position": position, "meta": meta}, None


# --------------------------------------------------------------------------
# Format cores. Each yields ("record", rec) / ("dead", entry) / ("filtered", reason)
# / ("info", name).

Event = Tuple[str, Any]


class TruncatedStream(EOFError):
    """A compressed stream ended in the middle of a frame."""


class _ZstdStream:
    """Zstandard frames decompressed one input chunk at a time.

    zstandard's stream reader ends quietly when a file is cut inside a frame;
    this reader notices, so the loss is reported instead of silent.
    """

    def __init__(self, raw):
        import zstandard

        self._zstd = zstandard
        self._raw = raw
        self._obj = zstandard.ZstdDecompressor().decompressobj()
        self._pending = b""
        self._fed = False

    def read1(self, size: int = -1) -> bytes:
        while True:
            if self._pending:
                data = self._pending
                self._pending = b""
            else:
                data = self._raw.read(1 << 16)
                if not data:
                    if self._fed and not self._obj.eof:
                        raise TruncatedStream("zstd stream ends inside a frame")
                    return b""
            self._fed = True
            out = self._obj.decompress(data)
            if self._obj.eof:
                # Next frame (files may hold several, as zstd -T does).
                self._pending = self._obj.unused_data
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


class _TooLong:
    """Marker for a line longer than the cap (its head is kept for the excerpt)."""

    def __init__(self, head: bytes, length: int):
        self.head = head
        self.length = length


def _iter_lines(stream, offset: int, limit: int, errors: tuple):
    """Yield ``(offset, line)`` from a byte stream, in 64 KB reads.

    Lines longer than ``limit`` come as ``(offset, _TooLong)`` and are never held
    whole. When the stream fails (truncated or corrupt compression), every
    complete line before the failure is yielded first, then ``(offset, exc)``
    for the unreadable remainder.
    """
    buf = bytearray()
    skipping = None  # (offset, head, length) of an over-long line being skipped
    # read1 returns what one step of decompression gives, so a failure loses
    # at most the last compressed block, not the whole read.
    read = getattr(stream, "read1", stream.read)
    while True:
        try:
            chunk = read(1 << 16)
        except errors as e:
            if skipping is not None:
                yield skipping[0], _TooLong(skipping[1], skipping[2] + len(buf))
                offset += len(buf)
            yield offset, e
            return
        if not chunk:
            if skipping is not None:
                yield skipping[0], _TooLong(skipping[1], skipping[2] + len(buf))
            elif buf:
                yield offset, bytes(buf)
            return
        buf += chunk
        start = 0
        while True:
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


def iter_jsonl(task: ReadTask, config: ReaderConfig) -> Iterator[Event]:
    limit = config.max_doc_bytes + 65536
    errors = _STREAM_ERRORS + _zstd_error()
    with _open_raw(task.path) as raw:
        stream = _decompressed(raw, task.compression)
        offset = 0
        if task.start > 0:
            # A line that starts before our range belongs to the previous range.
            raw.seek(task.start - 1)
            offset = task.start - 1 + len(raw.readline())
        end = task.end if task.end >= 0 else None
        for position, line in _iter_lines(stream, offset, limit, errors):
            if end is not None and position >= end:
                return
            if isinstance(line, Exception):
                yield "dead", common.dead_letter_entry(
                    task.path, position, "truncated_or_corrupt_stream",
                    f"{type(line).__name__}: {line}; records before this offset were kept")
                return
            if isinstance(line, _TooLong):
                yield "dead", common.dead_letter_entry(
                    task.path, position, "too_large",
                    f"line of {line.length} bytes exceeds the cap", line.head)
                continue
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


def iter_parquet(task: ReadTask, config: ReaderConfig) -> Iterator[Event]:
    import pyarrow.parquet as pq

    with _open_raw(task.path) as raw:
        try:
            pf = pq.ParquetFile(raw)
        except Exception as e:
            yield "dead", common.dead_letter_entry(
                task.path, 0, "unreadable_parquet", f"{type(e).__name__}: {e}", unit="file")
            return
        names = set(pf.schema_arrow.names)
        if config.text_field not in names:
            if task.row_group <= 0:
                yield "dead", common.dead_letter_entry(
                    task.path, 0, "missing_text_column",
                    f"no column {config.text_field!r} among {sorted(names)[:20]}", unit="file")
            return
        # Read only the columns the pipeline uses.
        columns = [c for c in (config.text_field, config.id_field, "url", "license") if c in names]
        groups = [task.row_group] if task.row_group >= 0 else list(range(pf.metadata.num_row_groups))
        first = task.first_row if task.row_group >= 0 else 0
        for g in groups:
            n_rows = pf.metadata.row_group(g).num_rows
            try:
                table = pf.read_row_group(g, columns=columns)
                cols = {c: table.column(c).to_pylist() for c in columns}
            except Exception as e:
                yield "dead", common.dead_letter_entry(
                    task.path, first, "corrupt_row_group",
                    f"row group {g} ({n_rows} rows): {type(e).__name__}: {e}", unit="row")
                first += n_rows
                continue
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


def iter_warc(task: ReadTask, config: ReaderConfig) -> Iterator[Event]:
    from fastwarc.warc import ArchiveIterator, WarcRecordType

    documents = int(WarcRecordType.response) | int(WarcRecordType.resource) | int(
        WarcRecordType.conversion)
    with _open_raw(task.path) as raw:
        position = 0
        try:
            for rec in ArchiveIterator(raw, parse_http=False, fsspec_args=False):
                position = rec.stream_pos
                rtype = int(rec.record_type)
                if not rtype & documents:
                    yield "filtered", "warc_non_document"
                    continue
                expected = rec.content_length
                if expected > config.max_doc_bytes * 4:
                    yield "dead", common.dead_letter_entry(
                        task.path, position, "too_large",
                        f"WARC block of {expected} bytes exceeds the cap", unit="byte")
                    rec.reader.consume()
                    continue
                block = rec.reader.read()
                if len(block) < expected:
                    yield "dead", common.dead_letter_entry(
                        task.path, position, "truncated_warc_record",
                        f"read {len(block)} of {expected} bytes", block, unit="byte")
                    return
                url = rec.headers.get("WARC-Target-URI", "")
                rid = rec.headers.get("WARC-Record-ID", "") or derive_id(task.rel, position)
                if rtype == int(WarcRecordType.response):
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
                    ctype = (rec.headers.get("Content-Type", "") or "").encode()
                    is_html = b"html" in ctype.lower()
                    if rtype == int(WarcRecordType.resource) and not is_html and b"text" not in ctype.lower():
                        yield "filtered", "warc_non_text"
                        continue
                text = _decode_body(body, ctype)
                obj = {"text": text, "id": rid, "url": url}
                record, dead = record_from_mapping(obj, task.path, task.rel, position, config, raw=body)
                if dead is not None:
                    yield "dead", dead
                else:
                    record["meta"]["html"] = is_html
                    yield "record", record
        except Exception as e:
            yield "dead", common.dead_letter_entry(
                task.path, position, "corrupt_warc",
                f"{type(e).__name__}: {e}; records before this offset were kept")


def _is_binary(data: bytes) -> bool:
    sample = data[:8192]
    if not sample:
        return False
    if sample.count(b"\x00") > max(1, len(sample) // 100):
        return True
    controls = sum(sample.count(bytes([c])) for c in range(32) if c not in (9, 10, 12, 13))
    return controls > len(sample) // 10


def iter_text(task: ReadTask, config: ReaderConfig) -> Iterator[Event]:
    with _open_raw(task.path) as raw:
        stream = _decompressed(raw, task.compression)
        try:
            data = stream.read(config.max_doc_bytes + 1)
        except (_STREAM_ERRORS + _zstd_error()) as e:
            yield "dead", common.dead_letter_entry(
                task.path, 0, "truncated_or_corrupt_stream", f"{type(e).__name__}: {e}", unit="file")
            return
    if data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    if _is_binary(data):
        yield "dead", common.dead_letter_entry(
            task.path, 0, "binary_file", "NUL or control bytes: not a text file", data, unit="file")
        return
    if len(data) > config.max_doc_bytes:
        yield "dead", common.dead_letter_entry(
            task.path, 0, "too_large", f"file exceeds max_doc_bytes={config.max_doc_bytes}", data, unit="file")
        return
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as e:
        yield "dead", common.dead_letter_entry(task.path, 0, "invalid_utf8", str(e), data, unit="file")
        return
    obj = {"text": text}
    record, dead = record_from_mapping(obj, task.path, task.rel, 0, config, raw=data, unit="file")
    yield ("dead", dead) if dead is not None else ("record", record)


_READERS = {JSONL: iter_jsonl, PARQUET: iter_parquet, WARC: iter_warc, TEXT: iter_text}


def read_task(task: ReadTask, config: ReaderConfig) -> Iterator[Event]:
    """Run the right core for a task; unknown formats become one dead letter."""
    reader = _READERS.get(task.fmt)
    if reader is None:
        try:
            with _open_raw(task.path) as f:
                head = f.read(200)
        except Exception:
            head = b""
        yield "dead", common.dead_letter_entry(
            task.path, 0, "unknown_format",
            "not JSONL, Parquet, WARC/WET or text (by extension and content)", head, unit="file")
        return
    try:
        yield from reader(task, config)
    except Exception as e:  # last line of defence: never crash the run
        yield "dead", common.dead_letter_entry(
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


class _PlanReads(common.CountingDoFn):
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
    """A log line every ``every`` seconds: records read, MB/s, elapsed (per worker)."""

    def __init__(self, every: float = 10.0):
        self._start = self._last = time.monotonic()
        self._records = 0
        self._chars = 0
        self._every = every

    def add(self, chars: int) -> None:
        self._records += 1
        self._chars += chars
        now = time.monotonic()
        if now - self._last >= self._every:
            self._last = now
            elapsed = now - self._start
            logging.getLogger("beamtrain.progress").warning(
                "read %d records, %.1f MB, %.2f MB/s, %.0f s elapsed", self._records,
                self._chars / 1e6, self._chars / 1e6 / max(elapsed, 1e-9), elapsed)


class _ReadTasks(common.CountingDoFn):
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
        for kind, value in read_task(task, self._config):
            self.count(IN, "records")
            if kind == "record":
                self._progress.add(len(value["text"]))
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
            common.DEAD, common.COUNTS, main="tasks")
        read = (
            planned.tasks
            | "SpreadTasks" >> beam.Reshuffle()
            | "ReadTasks" >> beam.ParDo(_ReadTasks(self._config)).with_outputs(
                common.DEAD, common.COUNTS, main="records")
        )
        dead = (planned[common.DEAD], read[common.DEAD]) | "MergeReadDead" >> beam.Flatten()
        counts = (planned[common.COUNTS], read[common.COUNTS]) | "MergeReadCounts" >> beam.Flatten()
        return {"records": read.records, "dead": dead, "counts": counts, "files": files}
