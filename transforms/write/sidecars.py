"""The files written beside the shards: the dead letter and the samples, PII scrubbed here.

* ``DIR/dead_letter/dead_letter-00000-of-00001.jsonl``: every dead-letter entry
  (:func:`transforms.accounting.dead_letter_entry`), one JSON line each, sorted
  keys. ``raw_excerpt`` and ``detail`` are PII scrubbed
  (:func:`scrub_dead_letter_entry`) unless the run keeps them raw
  (``--dead_letter_raw``); ids and source paths are written as they are.
* ``DIR/samples.jsonl``: a few :class:`~transforms.accounting.Sample` s per
  outcome (:data:`SAMPLES_PER_OUTCOME`), each with an excerpt scrubbed as the
  whole text would be (:func:`scrubbed_excerpt`); report.html shows them.

Scrubbing happens here, as the lines are made, so no DoFn upstream needs the
PII scrubber to count or sample; the raw text of a sample goes no further than
the step that scrubs it.
"""

from __future__ import annotations

import json
from typing import Any, Dict

import apache_beam as beam
from apache_beam.io.filesystems import FileSystems

from transforms.accounting import Sample
from transforms.text.pii import scrub, scrub_prefix

__all__ = ["SAMPLE_CHARS", "SAMPLES_PER_OUTCOME", "scrubbed_excerpt", "scrub_dead_letter_entry",
           "dead_letter_line", "sample_line", "WriteDeadLetter", "WriteSamples"]

SAMPLE_CHARS = 300  # characters of a sample's excerpt
SAMPLES_PER_OUTCOME = 5  # samples.jsonl lines per (kind, reason)


def scrubbed_excerpt(text: Any) -> str:
    """The first SAMPLE_CHARS characters of ``text`` with PII replaced: what reports may show.

    Scrubbed as the whole text would be, then cut: a finding that runs past the cut
    (a private key whose END line comes later, an email cut in two) is found in full
    and shows as its whole tag, never as a visible prefix (transforms.text.pii.scrub_prefix).
    """
    if not isinstance(text, str) or not text:
        return ""
    try:
        excerpt = scrub_prefix(text, SAMPLE_CHARS)
    except Exception:  # noqa: BLE001 - never show what could not be scrubbed
        return "[excerpt withheld: PII scrubber failed]"
    return excerpt.encode("utf-8", "backslashreplace").decode("utf-8")


def scrub_dead_letter_entry(entry: Dict[str, Any]) -> Dict[str, Any]:
    """A copy of a dead-letter entry with ``raw_excerpt`` and ``detail`` PII-scrubbed.

    Findings become tags (``<EMAIL>``, ``<SECRET>``, ...) as the default PII scrubber
    writes them. ``source``, ``position``, ``unit``, ``reason`` and ``id`` are left as
    they are: they locate the broken input, and ids are keys, never scrubbed (an id
    that holds an email stays in the dead letter as it came). Pure: ``entry`` is not
    changed.
    """
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


def dead_letter_line(entry: Dict[str, Any], raw: bool = False) -> str:
    """One line of the dead letter: the entry, scrubbed unless ``raw``."""
    if not raw:
        entry = scrub_dead_letter_entry(entry)
    return json.dumps(entry, sort_keys=True, ensure_ascii=False)


def sample_line(sample: Sample) -> str:
    """One line of samples.jsonl: where the record came from and its scrubbed excerpt."""
    entry = {"kind": sample.kind, "reason": sample.reason, "id": sample.id,
             "source": sample.source, "excerpt": scrubbed_excerpt(sample.text)}
    if sample.thumbnail:
        entry["thumbnail"] = sample.thumbnail
    if sample.language:
        entry["language"] = sample.language
    return json.dumps(entry, ensure_ascii=False)


class WriteDeadLetter(beam.PTransform):
    """Dead-letter entries (one PCollection or a tuple) -> DIR/dead_letter/; outputs the file paths."""

    def __init__(self, output_dir: str, raw: bool = False):
        super().__init__()
        self._output_dir = output_dir
        self._raw = raw

    def expand(self, dead):
        if not isinstance(dead, beam.PCollection):
            dead = dead | "MergeDeadLetters" >> beam.Flatten()
        return (
            dead
            | "DeadToJson" >> beam.Map(dead_letter_line, self._raw)
            | "WriteDeadLetter" >> beam.io.WriteToText(
                FileSystems.join(self._output_dir, "dead_letter", "dead_letter"),
                file_name_suffix=".jsonl", num_shards=1)
        )


class WriteSamples(beam.PTransform):
    """Samples -> DIR/samples.jsonl (a few per outcome, scrubbed); outputs its path."""

    def __init__(self, output_dir: str):
        super().__init__()
        self._output_dir = output_dir

    def expand(self, samples):
        return (
            samples
            | "ScrubSamples" >> beam.Map(lambda s: ((s.kind, s.reason), sample_line(s)))
            | "FewPerOutcome" >> beam.combiners.Sample.FixedSizePerKey(SAMPLES_PER_OUTCOME)
            | "SampleLines" >> beam.FlatMap(lambda kv: sorted(kv[1]))
            | "WriteSamples" >> beam.io.WriteToText(
                FileSystems.join(self._output_dir, "samples"), file_name_suffix=".jsonl",
                num_shards=1, shard_name_template="")
        )
