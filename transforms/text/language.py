"""The language step as a Beam transform: label every record, keep the chosen languages.

Each record gets ``language`` (a lid.176 label, ISO 639-1 where one exists)
and ``language_score`` (the model's probability of it), which travel into the
Example, the samples and the report; the filter, dedup and tokenizer steps
read them (:mod:`transforms.text.lang`). Every record is counted under
``languages.<language>``. With ``languages`` set, a record in any other
language is dropped as ``filtered.language``; a record whose score is below
``threshold`` as ``filtered.language_score`` (datatrove's ``LanguageFilter``
keeps a document when its best score reaches the threshold, 0.65 by default).
"""

from __future__ import annotations

import dataclasses
import time
from typing import Tuple

import apache_beam as beam

from transforms import accounting
from transforms.accounting import FILTERED
from transforms.text.lang import LanguageIdentifier

__all__ = ["IdentifyLanguage", "LanguageConfig", "LANGUAGES"]

LANGUAGES = "languages"  # counts kind: records per identified language


@dataclasses.dataclass(frozen=True)
class LanguageConfig:
    """``languages``: labels to keep (empty: every language); ``threshold``: minimum score."""

    languages: Tuple[str, ...] = ()
    threshold: float = 0.65

    def __post_init__(self):
        if not 0.0 <= self.threshold <= 1.0:
            raise ValueError(f"language threshold must be in [0, 1], got {self.threshold}")
        object.__setattr__(self, "languages", tuple(sorted(set(self.languages))))


class _LanguageDoFn(accounting.CountingDoFn):
    def __init__(self, config: LanguageConfig):
        super().__init__()
        self._config = config
        self._identify = None

    def setup(self):
        self._identify = LanguageIdentifier()  # the model, once per worker

    def process(self, record: dict):
        start = time.perf_counter()
        language, score = self._identify(record["text"])
        self.time("language", time.perf_counter() - start)
        record = dict(record, language=language, language_score=round(score, 4))
        self.count(LANGUAGES, language, metric=False)
        allowed = self._config.languages
        if allowed and language not in allowed:
            self.count(FILTERED, "language")
            self.sample(FILTERED, "language", record)
            return
        if score < self._config.threshold:
            self.count(FILTERED, "language_score")
            self.sample(FILTERED, "language_score", record)
            return
        yield record


class IdentifyLanguage(beam.PTransform):
    """Records -> records with ``language`` and ``language_score``; ``counts`` and ``samples``."""

    def __init__(self, config: LanguageConfig = LanguageConfig()):
        super().__init__()
        self._config = config

    def expand(self, records):
        return records | "LabelLanguage" >> beam.ParDo(_LanguageDoFn(self._config)).with_outputs(
            accounting.COUNTS, accounting.SAMPLES, main="records")
