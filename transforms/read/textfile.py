"""Plain text: one record per file (binary or oversized files are dead letters)."""

from __future__ import annotations

from typing import Callable, Iterator, Optional

from transforms import accounting
from transforms.read.limits import open_limited, read_errors, remainder_reason
from transforms.read.plan import BOM, ReaderConfig, ReadTask, open_raw
from transforms.read.records import Event, record_from_mapping

__all__ = ["iter_text"]


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
    with open_raw(task.path) as raw:
        stream = open_limited(raw, task, config, on_bytes=on_bytes)
        try:
            data = _read_upto(stream, config.max_doc_bytes + 1)
        except read_errors() as e:
            reason, detail = remainder_reason(e)
            yield "dead", accounting.dead_letter_entry(task.path, 0, reason, detail, unit="file")
            return
    if data.startswith(BOM):
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
