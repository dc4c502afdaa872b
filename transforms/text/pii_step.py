"""The PII step as a Beam transform: find and replace PII in each record's text.

The rules live in :mod:`transforms.text.pii`, a pure core that imports no
Beam (the dead-letter and excerpt scrubbing in :mod:`transforms.accounting`
and the report use it without a pipeline); this module is its Beam wrapper.

Layout of the text stages: a pure core (functions, a config dataclass, a
callable class) that never uses Beam, and a thin Beam wrapper (a module-level
DoFn that builds the core in ``setup()``, a one-step PTransform). Core and
wrapper share a module, core first and wrapper last under ``# Beam``
(``clean.py``, ``tokenize.py``), unless other package modules import the core
without running the step, or several rule modules feed one step: then the core
modules import no Beam at all and the wrapper is a module of its own
(``pii.py`` / ``pii_step.py``; ``content.py`` and ``filters.py`` / ``quality.py``).

Per record: every finding is counted under ``pii.<KIND>`` and documents with
any under ``info.pii.documents_with_findings``; a document with more than
``drop_above`` findings (when set) is dropped and counted under
``filtered.pii_too_many``.
"""

from __future__ import annotations

import time

import apache_beam as beam

from transforms import accounting
from transforms.accounting import FILTERED, INFO
from transforms.text.pii import PiiConfig, PiiScrubber

__all__ = ["ScrubPii", "PII"]

PII = "pii"  # counts kind: findings per PII kind (stats.json "pii")


class _PiiDoFn(accounting.CountingDoFn):
    def __init__(self, config: PiiConfig, drop_above: int):
        super().__init__()
        self._config = config
        self._drop_above = drop_above

    def setup(self):
        self._scrubber = PiiScrubber(self._config)

    def process(self, record: dict):
        start = time.perf_counter()
        text, spans = self._scrubber.scrub(record["text"], doc_key=record["id"])
        self.time("pii", time.perf_counter() - start)
        if not spans:
            yield record
            return
        for span in spans:
            self.count(PII, span.kind)
        self.count(INFO, "pii.documents_with_findings")
        if self._drop_above and len(spans) > self._drop_above:
            self.count(FILTERED, "pii_too_many")
            self.sample(FILTERED, "pii_too_many", dict(record, text=text))
            return
        out = dict(record)
        out["text"] = text
        yield out


class ScrubPii(beam.PTransform):
    """Records -> records with PII replaced (or dropped above ``drop_above`` findings).

    Args:
      config: which kinds to find and how to replace them.
      drop_above: drop a document with more findings than this; 0 keeps every document.

    Returns the ParDo's outputs: ``records`` (main) and ``counts``.
    """

    def __init__(self, config: PiiConfig = PiiConfig(), drop_above: int = 0):
        super().__init__()
        if drop_above < 0:
            raise ValueError(f"drop_above must be >= 0, got {drop_above}")
        self._config = config
        self._drop_above = drop_above

    def expand(self, records):
        return records | "FindAndScrub" >> beam.ParDo(
            _PiiDoFn(self._config, self._drop_above)).with_outputs(
                accounting.COUNTS, accounting.SAMPLES, main="records")
