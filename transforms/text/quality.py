"""The filter step as a Beam transform: licence allowlist, word blocklist, quality rules.

In order: :class:`transforms.text.content.LicenseFilter` (on the record's
``license`` metadata), :class:`transforms.text.content.Blocklist`, then
:class:`transforms.text.filters.TextFilter` (C4, Gopher, length). Each dropped
document is counted under ``filtered.<reason>``; documents the licence rule
lets through are counted under ``license.<family>`` (or ``license.missing``); lines removed by the C4 line rules
under ``lines_removed.<reason>`` (informational: a document that loses lines
is still one record). A record the ``lang`` step labelled gets its language's
rules (:meth:`transforms.text.filters.TextFilter.__call__`).

The rules are pure cores that import no Beam (:mod:`transforms.text.content`,
:mod:`transforms.text.filters`); this module is only their Beam wrapper (the
layout of the text stages is described in :mod:`transforms.text.pii_step`).
"""

from __future__ import annotations

import time
from typing import Optional

import apache_beam as beam

from transforms import accounting
from transforms.accounting import FILTERED
from transforms.text.content import Blocklist, BlocklistConfig, LicenseConfig, LicenseFilter
from transforms.text.filters import FilterConfig, TextFilter

__all__ = ["QualityFilter", "LINES_REMOVED", "LICENSE"]

LINES_REMOVED = "lines_removed"
LICENSE = "license"


class _FilterDoFn(accounting.CountingDoFn):
    def __init__(self, config: FilterConfig, license_config: Optional[LicenseConfig],
                 blocklist_config: Optional[BlocklistConfig]):
        super().__init__()
        self._config = config
        self._license_config = license_config
        self._blocklist_config = blocklist_config
        self._filter = None

    def setup(self):
        self._filter = TextFilter(self._config)
        self._license = LicenseFilter(self._license_config) if self._license_config else None
        self._blocklist = Blocklist(self._blocklist_config) if self._blocklist_config else None

    def process(self, record: dict):
        start = time.perf_counter()
        kept = self._filter_one(record)  # timed without the downstream work a yield runs
        self.time("filter", time.perf_counter() - start)
        if kept is not None:
            yield kept

    def _filter_one(self, record: dict):
        if self._license is not None:
            keep, outcome = self._license(record.get("meta", {}).get("license"))
            if not keep:
                self.count(FILTERED, outcome)
                self.sample(FILTERED, outcome, record)
                return None
            self.count(LICENSE, outcome, metric=False)
        if self._blocklist is not None:
            reason, hits = self._blocklist(record["text"])
            if reason is not None:
                self.count(FILTERED, reason)
                self.sample(FILTERED, reason, record)
                return None
        line_counts: dict = {}
        text, reason = self._filter(record["text"], line_counts, language=record.get("language"))
        for line_reason, n in line_counts.items():
            if n:
                self.count(LINES_REMOVED, line_reason, n)
        if reason is not None:
            self.count(FILTERED, reason)
            self.sample(FILTERED, reason, record)
            return None
        if text != record["text"]:
            record = dict(record)
            record["text"] = text
        return record


class QualityFilter(beam.PTransform):
    """Records -> records that pass the Gopher/C4/length rules; ``counts`` side output."""

    def __init__(self, config: FilterConfig = FilterConfig(),
                 license_config: Optional[LicenseConfig] = None,
                 blocklist_config: Optional[BlocklistConfig] = None):
        super().__init__()
        self._config = config
        self._license_config = license_config
        self._blocklist_config = blocklist_config

    def expand(self, records):
        return records | "QualityRules" >> beam.ParDo(_FilterDoFn(
            self._config, self._license_config, self._blocklist_config)).with_outputs(
                accounting.COUNTS, accounting.SAMPLES, main="records")
