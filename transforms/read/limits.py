"""Decompressed streams behind a file's limits, and the stop for broken files.

Resources are bounded per file (:class:`~transforms.read.plan.ReaderConfig`):
at most ``max_file_bytes`` decompressed bytes are read, a compressed stream
that inflates more than ``max_decompression_ratio`` times (checked once 16 MiB
have come out) stops, and a read task that has produced ``max_dead_per_file``
dead letters while more than ``max_broken_share`` of its records were broken
stops too (:func:`stop_when_broken`). Whatever is left unread then counts as
one dead-letter record (``file_too_large``, ``decompression_bomb``,
``too_many_broken_records``).
"""

from __future__ import annotations

import gzip
import zlib
from typing import Callable, Iterator, Optional, Tuple

from transforms import accounting
from transforms.read.plan import GZIP, NONE, PARQUET, RATIO_FLOOR, ZSTD, ReaderConfig, ReadTask
from transforms.read.records import Event

__all__ = [
    "TruncatedStream", "ReadLimitExceeded", "open_limited", "read_errors", "remainder_reason",
    "stop_when_broken",
]


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
        if (self._compressed and self.total >= RATIO_FLOOR
                and self.total > config.max_decompression_ratio * max(self._metered.consumed, 1)):
            raise ReadLimitExceeded(
                "decompression_bomb",
                f"{self.total} bytes out of {self._metered.consumed} compressed bytes: "
                f"over max_decompression_ratio={config.max_decompression_ratio:g}")
        return data

    read = read1


def open_limited(raw, task: ReadTask, config: ReaderConfig, start: int = 0,
                 on_bytes: Optional[Callable[[int], None]] = None) -> _Limited:
    """``raw`` decompressed as ``task`` says, behind the file's limits."""
    metered = _Metered(raw)
    compressed = task.compression != NONE
    # A byte range of a plain file: plan_reads already kept it under max_file_bytes.
    check_size = compressed or task.end < 0
    return _Limited(_decompressed(metered, task.compression), metered, config, compressed,
                    start=start, check_size=check_size, on_bytes=on_bytes)


def remainder_reason(err: Exception) -> Tuple[str, str]:
    """(reason, detail) of the dead letter for an unreadable remainder."""
    if isinstance(err, ReadLimitExceeded):
        return err.reason, err.detail
    return "truncated_or_corrupt_stream", f"{type(err).__name__}: {err}"


def _zstd_error() -> tuple:
    try:
        import zstandard

        return (zstandard.ZstdError,)
    except ImportError:  # pragma: no cover
        return ()


def read_errors() -> tuple:
    """The exceptions that mean a stream cannot be read further (the rest is one dead letter)."""
    return _STREAM_ERRORS + _zstd_error() + (ReadLimitExceeded,)


def stop_when_broken(events: Iterator[Event], task: ReadTask, config: ReaderConfig) -> Iterator[Event]:
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
