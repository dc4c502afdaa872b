"""Readers: JSONL (plain, .gz, .zst), Parquet, plain text, WARC/WET.

Pure cores (``iter_*`` functions) turn one *read task* -- a file, or a byte
range / row group of one -- into records and dead-letter entries; the Beam
side (:class:`ReadCorpus`) expands globs, plans read tasks so that large files
split across workers, reshuffles the tasks and runs the cores. Nothing read is
ever unpickled or executed; no path or URL found inside a file is opened.

The modules beside this one, in the order a file meets them:

* :mod:`transforms.read.plan` -- format detection, :class:`ReaderConfig`,
  :class:`ReadTask`, :func:`plan_reads`;
* :mod:`transforms.read.limits` -- decompression behind the per-file limits,
  and the stop for files with too many broken records;
* :mod:`transforms.read.jsonl`, :mod:`~transforms.read.parquet`,
  :mod:`~transforms.read.warc`, :mod:`~transforms.read.textfile` -- one core
  per format family;
* :mod:`transforms.read.records` -- records, their provenance and derived ids.

This module holds the Beam side and :func:`read_task`, which runs the right
core for a task; the names other code imports from here are re-exported.
"""

from __future__ import annotations

import logging
import posixpath
import time
from typing import Callable, Iterator, List, Optional

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms import accounting
from transforms.accounting import FILTERED, IN, INFO
from transforms.read.jsonl import iter_jsonl, parse_json_record
from transforms.read.limits import ReadLimitExceeded, stop_when_broken
from transforms.read.arrow import iter_arrow
from transforms.read.parquet import iter_parquet
from transforms.read.plan import (ARROW, JSONL, PARQUET, TEXT, WARC, ReaderConfig, ReadTask,
                                  detect_format, glob_root, open_raw, plan_reads)
from transforms.read.records import Event, derive_id
from transforms.read.textfile import iter_text
from transforms.read.warc import iter_warc

__all__ = [
    "ReaderConfig",
    "ReadTask",
    "detect_format",
    "plan_reads",
    "read_task",
    "parse_json_record",
    "ReadLimitExceeded",
    "ReadCorpus",
    "ExpandGlob",
    "derive_id",
]


_READERS = {JSONL: iter_jsonl, PARQUET: iter_parquet, WARC: iter_warc, TEXT: iter_text,
            ARROW: iter_arrow}


def read_task(task: ReadTask, config: ReaderConfig,
              on_bytes: Optional[Callable[[int], None]] = None) -> Iterator[Event]:
    """Run the right core for a task; unknown formats become one dead letter.

    ``on_bytes(n)`` hears of every read from the file (progress by bytes
    read, blank or not). The task stops early when too many of its records
    are broken (:func:`stop_when_broken`).
    """
    reader = _READERS.get(task.fmt)
    if reader is None:
        try:
            with open_raw(task.path) as f:
                head = f.read(200)
        except Exception:
            head = b""
        yield "dead", accounting.dead_letter_entry(
            task.path, 0, "unknown_format",
            "not JSONL, Parquet, Arrow IPC, WARC/WET or text (by extension and content)", head,
            unit="file")
        return
    try:
        yield from stop_when_broken(reader(task, config, on_bytes), task, config)
    except Exception as e:  # last line of defence: never crash the run
        yield "dead", accounting.dead_letter_entry(
            task.path, task.start, "read_error", f"{type(e).__name__}: {e}", unit="file")


# --------------------------------------------------------------------------
# Beam transforms


class ExpandGlob(beam.DoFn):
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
                with open_raw(task.path) as f:
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
            | "ExpandGlobs" >> beam.ParDo(ExpandGlob())
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
