"""The filter step as a Beam transform over :class:`transforms.filters.TextFilter`.

Each dropped document is counted under ``filtered.<reason>``; lines removed by
the C4 line rules are counted under ``lines_removed.<reason>`` (informational:
a document that loses lines is still one record).
"""

from __future__ import annotations

import apache_beam as beam

from transforms import common
from transforms.common import FILTERED
from transforms.filters import FilterConfig, TextFilter

__all__ = ["QualityFilter", "LINES_REMOVED"]

LINES_REMOVED = "lines_removed"


class _FilterDoFn(common.CountingDoFn):
    def __init__(self, config: FilterConfig):
        super().__init__()
        self._config = config
        self._filter = None

    def setup(self):
        self._filter = TextFilter(self._config)

    def process(self, record: dict):
        line_counts: dict = {}
        text, reason = self._filter(record["text"], line_counts)
        for line_reason, n in line_counts.items():
            if n:
                self.count(LINES_REMOVED, line_reason, n)
        if reason is not None:
            self.count(FILTERED, reason)
            return
        if text != record["text"]:
            record = dict(record)
            record["text"] = text
        yield record


class QualityFilter(beam.PTransform):
    """Records -> records that pass the Gopher/C4/length rules; ``counts`` side output."""

    def __init__(self, config: FilterConfig = FilterConfig()):
        super().__init__()
        self._config = config

    def expand(self, records):
        return records | "QualityRules" >> beam.ParDo(_FilterDoFn(self._config)).with_outputs(
            common.COUNTS, main="records")
