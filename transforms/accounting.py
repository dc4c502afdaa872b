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
"""

from __future__ import annotations

import collections
import hashlib
import json
from typing import Any, Dict, Iterator, Optional, Tuple

import apache_beam as beam
from apache_beam import pvalue
from apache_beam.transforms.window import GlobalWindows

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
    "SAMPLE",
    "TIME_SECONDS",
    "TIME_CALLS",
    "is_sample",
    "scrubbed_excerpt",
    "record_key",
    "node_id",
    "node_record_id",
    "scrub_dead_letter_entry",
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

EXCERPT_CHARS = 200


TIME_SECONDS = "time_seconds"
TIME_CALLS = "time_calls"
# Samples travel on the counts output, keyed (SAMPLE, "kind|reason"), with a
# JSON string as the value; pipelines split them off before summing counts.
SAMPLE = "sample"
SAMPLES_PER_BUNDLE = 3
SAMPLE_CHARS = 300

_SCRUBBER = None


def scrubbed_excerpt(text: Any) -> str:
    """The first SAMPLE_CHARS characters of ``text`` with PII replaced: what reports may show.

    Scrubbed as the whole text would be, then cut: a finding that runs past the cut
    (a private key whose END line comes later, an email cut in two) is found in full
    and shows as its whole tag, never as a visible prefix (transforms.text.pii.scrub_prefix).
    """
    global _SCRUBBER
    if not isinstance(text, str) or not text:
        return ""
    from transforms.text.pii import PiiScrubber, scrub_prefix

    if _SCRUBBER is None:
        _SCRUBBER = PiiScrubber()
    try:
        excerpt = scrub_prefix(text, SAMPLE_CHARS, _SCRUBBER)
    except Exception:  # noqa: BLE001 - never show what could not be scrubbed
        return "[excerpt withheld: PII scrubber failed]"
    return excerpt.encode("utf-8", "backslashreplace").decode("utf-8")


def is_sample(item) -> bool:
    return item[0][0] == SAMPLE


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
    scrubbing the excerpt later (scrub_dead_letter_entry) finds all of it: no half
    email, card or key survives the scrub. Bytes are decoded with backslash escapes;
    at most 256 KiB of them are looked at.
    """
    if raw is None:
        return ""
    if isinstance(raw, (bytes, bytearray, memoryview)):
        raw = bytes(raw[: 1 << 18]).decode("utf-8", "backslashreplace")
    text = str(raw)
    if len(text) > EXCERPT_CHARS:
        from transforms.text.pii import safe_cut

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
    finding is split); the pipelines pass each entry through
    :func:`scrub_dead_letter_entry` before writing it, unless --dead_letter_raw.
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


def scrub_dead_letter_entry(entry: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of a dead-letter entry with ``raw_excerpt`` and ``detail`` PII-scrubbed.

    Findings become tags (``<EMAIL>``, ``<SECRET>``, ...) as the default PII scrubber
    writes them. ``source``, ``position``, ``unit``, ``reason`` and ``id`` are left as
    they are: they locate the broken input, and ids are keys, never scrubbed (an id
    that holds an email stays in the dead letter as it came). Pure: ``entry`` is not
    changed.
    """
    from transforms.text.pii import scrub

    out = dict(entry)
    for field in ("raw_excerpt", "detail"):
        value = out.get(field)
        if value is None or value == "":
            continue
        try:
            out[field] = scrub(value if isinstance(value, str) else str(value))
        except Exception:  # noqa: BLE001 - never write what could not be scrubbed
            out[field] = "[withheld: PII scrubber failed]"
    return out


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
        """Keep a few examples per outcome (PII scrubbed) for the report's samples."""
        bucket = self._samples.setdefault((kind, reason), [])
        if len(bucket) >= SAMPLES_PER_BUNDLE:
            return
        entry = {"kind": kind, "reason": reason, "id": str(record.get("id", "")),
                 "source": str(record.get("source", "")),
                 "excerpt": scrubbed_excerpt(record.get("text", ""))}
        if thumbnail:
            entry["thumbnail"] = thumbnail
        bucket.append(entry)

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
        for (kind, reason), entries in sorted(self._samples.items()):
            for entry in entries:
                yield pvalue.TaggedOutput(COUNTS, GlobalWindows.windowed_value(
                    ((SAMPLE, f"{kind}|{reason}"), json.dumps(entry, ensure_ascii=False))))
        self._tally = collections.Counter()
        self._samples = {}
