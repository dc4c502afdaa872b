"""Shared pieces of every transform: records, stable hashes, drop accounting.

A *record* is a plain dict flowing between the stages::

    {"id": str, "text": str, "source": str, "position": int, "meta": {...}}

``meta`` carries optional input fields (``url``, ``license``, ``html``).

Every record that enters the pipeline is accounted for exactly once
(DESIGN.md): it is either written, or counted under ``filtered``,
``duplicates`` or ``dead_letter`` with a reason. DoFns count through
:class:`CountingDoFn`, which keeps per-bundle tallies, mirrors them into Beam
metrics (so a runner's UI shows them), and emits the tallies on the
``counts`` side output in ``finish_bundle``: a handful of elements per bundle
instead of one per dropped record.

A DoFn that calls ``self.sample(...)`` also emits a few :class:`Sample` s per
outcome (the raw record text: never written as it is) on its ``samples``
output; its transform declares that output (``with_outputs(COUNTS, SAMPLES,
...)``) and hands it on, and :mod:`transforms.write.sidecars` scrubs and
writes them.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
from typing import Any, Dict, Iterator, Optional, Tuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindows

# The pure PII core (no Beam, no import of this module): a dead-letter excerpt is
# cut where it splits no finding, so that scrubbing it later finds each one whole.
from transforms.text.pii import safe_cut

__all__ = [
    "NAMESPACE",
    "IN",
    "OUT",
    "FILTERED",
    "DUPLICATES",
    "DEAD_LETTER",
    "COUNTS",
    "DEAD",
    "CountingDoFn",
    "stable_hash64",
    "text_fingerprint",
    "dead_letter_entry",
    "EXCERPT_CHARS",
    "INFO",
    "SAMPLES",
    "Sample",
    "TIME_SECONDS",
    "TIME_CALLS",
    "record_key",
    "node_id",
    "node_record_id",
]

NAMESPACE = "beamtrain"

# Accounting kinds (the keys of stats.json).
IN = "records_in"
OUT = "records_out"
FILTERED = "filtered"
DUPLICATES = "duplicates"
DEAD_LETTER = "dead_letter"
# Informational tallies that are not part of the accounting identity.
INFO = "info"

# Side-output tags.
COUNTS = "counts"
DEAD = "dead"
SAMPLES = "samples"  # a few records per outcome, for the report (see CountingDoFn.sample)

EXCERPT_CHARS = 200


TIME_SECONDS = "time_seconds"
TIME_CALLS = "time_calls"
SAMPLES_PER_BUNDLE = 3  # kept per (kind, reason) by each DoFn in each bundle


@dataclasses.dataclass(frozen=True)
class Sample:
    """One record shown as an example of an outcome (``kind``, ``reason``) in the report.

    ``text`` is the record's text as it was: :mod:`transforms.write.sidecars`
    turns it into a PII-scrubbed excerpt before anything is written.
    """

    kind: str
    reason: str
    id: str
    source: str
    text: str
    thumbnail: str = ""
    language: str = ""  # the lang step's label, where it ran


def stable_hash64(value: str) -> int:
    """A 64-bit hash that is the same on every machine and Python process."""
    return int.from_bytes(
        hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=8).digest(), "big"
    )


def record_key(path: str, position: Any, member: str = "") -> str:
    """The identity of one input record, unique per record (DESIGN.md).

    Input ids need not be unique (ids numbered per file, two globs holding the
    same relative name), so every keyed step (dedup survivors, near-duplicate
    graphs) keys by this instead: a 128-bit hash of the input file's full
    path, the record's position in it and, inside containers, the member name.
    """
    value = f"{path}\x00{position}\x00{member}"
    return hashlib.blake2b(value.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


def node_id(record: Dict[str, Any]) -> str:
    """A record's node in keyed steps: its id, then its unique key.

    Sorting nodes sorts by id first, so "the smallest id survives" still holds
    where a step picks a survivor, while two records sharing an id stay apart.
    Records built without a ``key`` (by hand, in tests) get one from their
    source, position and id.
    """
    key = record.get("key") or record_key(record.get("source", ""), record.get("position", 0),
                                          str(record.get("id", "")))
    return f"{record['id']}\x1f{key}"


def node_record_id(node: str) -> str:
    """The record id part of :func:`node_id`."""
    return node.rsplit("\x1f", 1)[0]


def text_fingerprint(text: str) -> bytes:
    """Hash of the normalized text used for exact deduplication.

    Case and whitespace differences do not make two documents different.
    """
    normalized = " ".join(text.lower().split())
    return hashlib.blake2b(normalized.encode("utf-8", "surrogatepass"), digest_size=16).digest()


def _excerpt(raw: Any) -> str:
    """About EXCERPT_CHARS characters of ``raw``, cut where no PII finding is split.

    The cut moves past a finding it would fall into (transforms.text.pii.safe_cut), so
    scrubbing the excerpt later (sidecars.scrub_dead_letter_entry) finds all of it: no half
    email, card or key survives the scrub. Bytes are decoded with backslash escapes;
    at most 256 KiB of them are looked at.
    """
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: 1 << 18]).decode("utf-8", "backslashreplace")
    text = str(raw)
    if len(text) > EXCERPT_CHARS:
        try:
            cut = safe_cut(text, EXCERPT_CHARS)
        except Exception:  # noqa: BLE001 - bad input never crashes a run; the scrub withholds it
            cut = EXCERPT_CHARS
        text = text[:cut]
    # Lone surrogates cannot be written as UTF-8: escape them.
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def dead_letter_entry(
    source: str,
    position: int,
    reason: str,
    detail: str = "",
    raw: Any = None,
    unit: str = "byte",
    record_id: Optional[str] = None,
) -> Dict[str, Any]:
    """One dead-letter line: where the broken input was, why, and an excerpt.

    ``detail`` and ``raw_excerpt`` are raw (the input as it was, cut where no PII
    finding is split); the dead letter writer scrubs them
    (:func:`transforms.write.sidecars.scrub_dead_letter_entry`) unless --dead_letter_raw.
    """
    entry = {
        "source": source,
        "position": int(position),
        "unit": unit,
        "reason": reason,
        "detail": _excerpt(detail) if detail else "",
        "raw_excerpt": _excerpt(raw),
    }
    if record_id is not None:
        entry["id"] = record_id
    return entry


class CountingDoFn(beam.DoFn):
    """A DoFn that tallies outcomes and emits them on the ``counts`` output.

    Subclasses call ``self.count(kind, reason)`` and ``self.dead(entry)``;
    they must call ``super().start_bundle()`` / ``finish_bundle()`` if they
    override them.
    """

    def __init__(self):
        super().__init__()
        self._tally: Dict[Tuple[str, str], int] = collections.Counter()
        self._metrics: Dict[Tuple[str, str], Any] = {}
        self._samples: Dict[Tuple[str, str], list] = {}

    def start_bundle(self):
        self._tally = collections.Counter()
        self._samples = {}

    def time(self, stage: str, seconds: float, calls: int = 1) -> None:
        """Processing time of a stage: summed into stats.json, a Beam distribution per call."""
        self._tally[(TIME_SECONDS, stage)] += seconds
        self._tally[(TIME_CALLS, stage)] += calls
        key = (TIME_SECONDS, stage)
        dist = self._metrics.get(key)
        if dist is None:
            dist = beam.metrics.Metrics.distribution(NAMESPACE, f"time_us.{stage}")
            self._metrics[key] = dist
        dist.update(int(seconds * 1e6))

    def sample(self, kind: str, reason: str, record: Dict[str, Any], thumbnail: str = "") -> None:
        """Keep a few examples per outcome for the report's samples (scrubbed when written)."""
        bucket = self._samples.setdefault((kind, reason), [])
        if len(bucket) >= SAMPLES_PER_BUNDLE:
            return
        text = record.get("text", "")
        bucket.append(Sample(kind=kind, reason=reason, id=str(record.get("id", "")),
                             source=str(record.get("source", "")),
                             text=text if isinstance(text, str) else "", thumbnail=thumbnail,
                             language=str(record.get("language") or "")))

    def count(self, kind: str, reason: str, n: int = 1, metric: bool = True) -> None:
        key = (kind, reason)
        self._tally[key] += n
        if not metric:
            return
        counter = self._metrics.get(key)
        if counter is None:
            counter = beam.metrics.Metrics.counter(NAMESPACE, f"{kind}.{reason}")
            self._metrics[key] = counter
        counter.inc(n)

    def dead(self, entry: Dict[str, Any]) -> pvalue.TaggedOutput:
        """Count a dead-letter entry and return the tagged output to yield."""
        self.count(DEAD_LETTER, entry["reason"])
        return pvalue.TaggedOutput(DEAD, entry)

    def finish_bundle(self) -> Iterator[Any]:
        for key, n in sorted(self._tally.items()):
            yield pvalue.TaggedOutput(COUNTS, GlobalWindows.windowed_value((key, n)))
        for _, samples in sorted(self._samples.items()):
            for sample in samples:
                yield pvalue.TaggedOutput(SAMPLES, GlobalWindows.windowed_value(sample))
        self._tally = collections.Counter()
        self._samples = {}
