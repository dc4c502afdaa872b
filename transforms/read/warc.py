"""WARC/WET (plain, or gzip/zstd as a whole or per record): one record per document.

WARC records are parsed here, not trusted by their Content-Length: a block
must end at a record boundary (CR/LF, then the next ``WARC/`` version line or
the end of the file). A record whose length lies (larger than the cap, past
the end of the file, or not ending at a boundary) is one dead letter, and
reading resumes at the next line beginning with ``WARC/1.``, so every later
record is still read and counted. WARC positions are offsets in the
decompressed stream.
"""

from __future__ import annotations

import re
from typing import Callable, Dict, Iterator, List, Optional, Tuple

from transforms import accounting
from transforms.read.limits import open_limited, read_errors, remainder_reason
from transforms.read.plan import ReaderConfig, ReadTask, open_raw
from transforms.read.records import Event, derive_id, record_from_mapping

__all__ = ["iter_warc"]

# The same pattern as records' HTML sniffing, on bytes.
_HTML_SNIFF = re.compile(rb"^\s*(?:<!doctype\s+html|<html|<head|<body|<\?xml[^>]*>\s*<html)", re.I)
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
    errors = read_errors()
    with open_raw(task.path) as raw:
        reader = _ByteReader(open_limited(raw, task, config, on_bytes=on_bytes))
        pending: List[Optional[int]] = [0]
        try:
            yield from _warc_events(reader, task, config, pending, errors)
        except errors as e:
            reason, detail = remainder_reason(e)
            at = pending[0] if pending[0] is not None else reader.offset
            yield "dead", accounting.dead_letter_entry(
                task.path, at, reason, f"{detail}; records before this offset were kept")
