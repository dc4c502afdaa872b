"""Exact deduplication on a fingerprint of each record, by default a hash of the normalized text.

Records are keyed by a fingerprint (by default :func:`text_key`:
:func:`transforms.accounting.text_fingerprint`, case and whitespace folded;
the image step passes its own, of the source bytes and caption) and combined
per key, keeping one survivor: the record with the smallest id (ties broken
by source and position, so the choice never depends on arrival order or
worker count). The combine is lifted before the shuffle, so each worker sends
at most one record per distinct fingerprint; records travel packed
(:mod:`transforms.packing`; on a local run, spilled to disk) beside their survivor key. Every other member of
a group is counted under ``duplicates.exact``.
"""

from __future__ import annotations

from typing import Any, Callable, Hashable, Optional, Tuple

import apache_beam as beam

from transforms import accounting
from transforms.accounting import DUPLICATES
from transforms.packing import pack, unpack

__all__ = ["survivor_key", "text_key", "KeepSmallestId", "ExactDedup"]


def text_key(record: dict) -> bytes:
    """The default fingerprint: a hash of the record's text, case and whitespace folded."""
    return accounting.text_fingerprint(record["text"])


def survivor_key(record: dict) -> Tuple[str, str, int, str]:
    """Total order used to choose a survivor: smallest id wins, then source, position, key."""
    return (record["id"], record.get("source", ""), record.get("position", 0),
            record.get("key", ""))


# Accumulator: (best (survivor key, packed record) or None, number of records seen)
_Acc = Tuple[Optional[Tuple[Any, bytes]], int]


class KeepSmallestId(beam.CombineFn):
    """Keeps the ``(survivor key, packed record)`` pair with the smallest key, and a count."""

    def create_accumulator(self) -> _Acc:
        return (None, 0)

    def add_input(self, acc: _Acc, item) -> _Acc:
        best, n = acc
        return (item if best is None or item[0] < best[0] else best, n + 1)

    def merge_accumulators(self, accs) -> _Acc:
        best, total = None, 0
        for cand, n in accs:
            total += n
            if cand is not None and (best is None or cand[0] < best[0]):
                best = cand
        return (best, total)

    def extract_output(self, acc: _Acc) -> _Acc:
        return acc


class _EmitSurvivors(accounting.CountingDoFn):
    def process(self, keyed: Tuple[Any, _Acc]):
        _, (best, n) = keyed
        if n > 1:
            self.count(DUPLICATES, "exact", n - 1)
        if best is not None:
            yield unpack(best[1])


class ExactDedup(beam.PTransform):
    """Records -> one survivor per fingerprint; ``counts`` side output.

    Args:
      fingerprint: a picklable ``record -> key``; records with equal keys are
        duplicates. Defaults to :func:`text_key` (the normalized text).

    Returns the ParDo's outputs: ``records`` (main) and ``counts``.
    """

    def __init__(self, fingerprint: Callable[[dict], Hashable] = text_key):
        super().__init__()
        if not callable(fingerprint):
            raise ValueError("fingerprint must be a function of a record")
        self._fingerprint = fingerprint

    def expand(self, records):
        fingerprint = self._fingerprint
        return (
            records
            | "KeyByFingerprint" >> beam.Map(lambda r: (fingerprint(r), (survivor_key(r), pack(r, spill=True))))
            | "KeepSmallestId" >> beam.CombinePerKey(KeepSmallestId())
            | "EmitSurvivors" >> beam.ParDo(_EmitSurvivors()).with_outputs(
                accounting.COUNTS, main="records")
        )
