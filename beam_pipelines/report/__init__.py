"""A one-file visual report of a pipeline run: ``DIR/report.html``.

Reads what every pipeline leaves in its output directory (stats.json,
manifest.json, the dead letter and, when the run recorded them,
samples.jsonl and stats.json's ``timing``) and writes ONE self-contained HTML
file: every plot is a base64 PNG data URI, the CSS is inline, and nothing is
fetched from anywhere (a Content-Security-Policy in the page forbids it), so
the file opens in a browser straight from disk or from a bucket download.

Usage::

    python -m beam_pipelines.report /tmp/beamtrain-out
    python -m beam_pipelines.report gs://BUCKET/out/v1 --output /tmp/report.html

What it shows: the accounting identity with its numbers; a waterfall from
records in to records out with one bar per reason (each filter rule,
exact/near duplicates, each dead-letter reason); the histograms of
stats.json; PII findings by kind; image formats; the time share per stage;
records, shards and tokens per split; the manifest's versions and inputs; and
a few kept and rejected records per reason.

Privacy: no raw input text is printed. Every string that comes from the input
goes through the PII scrubber here, whatever wrote it: sample excerpts (already
scrubbed by the pipeline, scrubbed again), the dead letter's ``raw_excerpt``
and ``detail`` (raw when the run used --dead_letter_raw, or from an older run),
record ids and sources, and licence names; then it is shortened and
HTML-escaped. Scrubbing comes before shortening, so a cut never leaves part of
a finding visible. When a run has no samples, a dead-letter reason falls back to
the dead letter's entries; every other reason says "no samples recorded".

Modules: ``load`` (reading DIR), ``stats`` (its numbers), ``scrub`` (input-derived
strings made safe), ``charts`` (the plots), ``markup`` and ``sections`` (the
HTML), ``page`` (the whole page); this module writes it.
"""

from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from beam_pipelines.report.charts import COLOURS
from beam_pipelines.report.load import (SAMPLES_PER_REASON, file_systems, join, load_dead_letter, load_samples,
                                        read_json)
from beam_pipelines.report.page import render
from beam_pipelines.report.stats import identity_ok

__all__ = ["build_report", "main", "REPORT_NAME", "render", "identity_ok", "COLOURS", "SAMPLES_PER_REASON"]

REPORT_NAME = "report.html"


def build_report(directory: str, output: Optional[str] = None) -> str:
    """Write ``directory/report.html`` (or ``output``) for a pipeline's output directory.

    Returns the path written. Raises FileNotFoundError when there is no stats.json.
    """
    directory = str(directory)
    stats = read_json(join(directory, "stats.json"))
    if stats is None:
        raise FileNotFoundError(f"no readable stats.json in {directory}")
    manifest = read_json(join(directory, "manifest.json"))
    samples, have_samples = load_samples(directory)
    dead = load_dead_letter(directory)
    page = render(directory, stats, manifest, samples, have_samples, dead)
    path = output or join(directory, REPORT_NAME)
    with file_systems().create(path) as f:
        f.write(page.encode("utf-8"))
    return path


def main(argv: Optional[List[str]] = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m beam_pipelines.report",
        description="Write DIR/report.html: a self-contained visual report of a pipeline run.")
    parser.add_argument("output_dir", help="A pipeline's --output_dir (local or any Beam filesystem).")
    parser.add_argument("--output", default=None, help="Write the report here instead of DIR/report.html.")
    args = parser.parse_args(argv)
    try:
        path = build_report(args.output_dir, args.output)
    except FileNotFoundError as e:
        sys.stderr.write(f"error: {e}\n")
        return 2
    print(f"report:      {path}")
    return 0
