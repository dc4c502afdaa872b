"""JSONL (plain, .gz, .zst): one record per line.

Lines are found in 64 KB reads; runs of blank lines cost no per-line work, and
a line longer than the cap is never held whole. A plain file may be read as a
byte range (a line belongs to the range it starts in). A UTF-8 byte-order mark
at the start of the file is dropped.
"""

from __future__ import annotations

import re
from typing import Callable, Iterator, Optional, Tuple

import orjson

from transforms import accounting
from transforms.read.limits import open_limited, read_errors, remainder_reason
from transforms.read.plan import BOM, ReaderConfig, ReadTask, open_raw
from transforms.read.records import Event, record_from_mapping

__all__ = ["parse_json_record", "iter_jsonl"]


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
    errors = read_errors()
    with open_raw(task.path) as raw:
        offset = 0
        if task.start > 0:
            # A line that starts before our range belongs to the previous range.
            raw.seek(task.start - 1)
            offset = task.start - 1 + len(raw.readline())
        stream = open_limited(raw, task, config, start=offset, on_bytes=on_bytes)
        end = task.end if task.end >= 0 else None
        for position, line in _iter_lines(stream, offset, limit, errors):
            if end is not None and position >= end:
                return
            if isinstance(line, Exception):
                reason, detail = remainder_reason(line)
                yield "dead", accounting.dead_letter_entry(
                    task.path, position, reason, f"{detail}; records before this offset were kept")
                return
            if isinstance(line, _TooLong):
                yield "dead", accounting.dead_letter_entry(
                    task.path, position, "too_large",
                    f"line of {line.length} bytes exceeds the cap", line.head)
                continue
            if position == 0 and line.startswith(BOM):
                line = line[3:]  # a UTF-8 byte-order mark opening the file
            if not line.strip():
                continue
            rec, dead = parse_json_record(line, task.path, task.rel, position, config)
            if dead is not None:
                yield "dead", dead
            else:
                yield "record", rec
