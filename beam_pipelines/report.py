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
"""

from __future__ import annotations

import argparse
import base64
import binascii
import collections
import datetime
import hashlib
import html
import io
import json
import logging
import math
import re
import sys
from typing import Any, Dict, Iterable, Iterator, List, Optional, Sequence, Tuple

__all__ = ["build_report", "main", "REPORT_NAME"]

REPORT_NAME = "report.html"
SAMPLES_PER_REASON = 3
DEAD_EXCERPT_CHARS = 160
SAMPLE_EXCERPT_CHARS = 320
MAX_THUMBNAIL_B64 = 400_000
MAX_INPUT_ROWS = 100

# Colours of the three ways a record leaves the pipeline, and of the survivors.
COLOURS = {
    "in": "#4c78a8",
    "out": "#2f9e44",
    "filtered": "#f59f00",
    "duplicates": "#7048e8",
    "dead_letter": "#e03131",
    "neutral": "#5c7cfa",
}
KIND_TITLES = {
    "kept": "Kept",
    "filtered": "Filtered",
    "duplicates": "Duplicates",
    "dead_letter": "Dead letter",
}
HISTOGRAMS = {
    # name: (title, x label, divide the bucket bounds by, exact values (no bucket width))
    "chars_per_doc": ("Characters per document (kept)", "characters", 1, False),
    "tokens_per_doc": ("Tokens per document (kept)", "tokens", 1, False),
    "near_dup_cluster_size": ("Near-duplicate cluster size", "documents in the cluster", 1, True),
    "image_long_side": ("Image long side (before resizing)", "pixels", 1, False),
    "image_aspect_ratio_x100": ("Image aspect ratio (width / height)", "width / height", 100, False),
}

# The page's only script: counts the images the browser could decode, so a
# headless browser's --dump-dom shows whether every plot loaded.
_SCRIPT = (
    "window.addEventListener('load', function () {"
    " var imgs = document.images, ok = 0;"
    " for (var i = 0; i < imgs.length; i++) {"
    " if (imgs[i].complete && imgs[i].naturalWidth > 0) { ok++; } }"
    " document.body.dataset.imagesLoaded = String(ok);"
    " document.body.dataset.imagesTotal = String(imgs.length); });"
)

_CSS = """
:root { --ink: #1f2933; --muted: #616e7c; --line: #d9e2ec; --bg: #f5f7fa; --card: #fff; }
* { box-sizing: border-box; }
body { margin: 0; background: var(--bg); color: var(--ink);
  font: 14px/1.45 "DejaVu Sans", "Helvetica Neue", Arial, sans-serif; }
header { background: #243b53; color: #fff; padding: 18px 32px; }
header h1 { margin: 0 0 4px; font-size: 22px; }
header .sub { color: #bcccdc; font-size: 13px; word-break: break-all; }
main { max-width: 1280px; margin: 0 auto; padding: 16px 32px 48px; }
section { background: var(--card); border: 1px solid var(--line); border-radius: 8px;
  padding: 16px 20px; margin: 16px 0; }
h2 { margin: 0 0 12px; font-size: 18px; }
h3 { margin: 16px 0 8px; font-size: 15px; }
h4 { margin: 12px 0 6px; font-size: 14px; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(150px, 1fr)); gap: 12px; }
.card { border: 1px solid var(--line); border-radius: 8px; padding: 10px 14px; background: #fff; }
.card .label { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
.card .value { font-size: 24px; font-weight: bold; }
.card .pct { color: var(--muted); font-size: 12px; }
.card.in { border-top: 4px solid #4c78a8; } .card.out { border-top: 4px solid #2f9e44; }
.card.filtered { border-top: 4px solid #f59f00; } .card.duplicates { border-top: 4px solid #7048e8; }
.card.dead_letter { border-top: 4px solid #e03131; }
.ok { color: #2b8a3e; font-weight: bold; } .bad { color: #c92a2a; font-weight: bold; }
.identity { font-family: "DejaVu Sans Mono", monospace; background: var(--bg); padding: 8px 12px;
  border-radius: 6px; margin: 12px 0 0; overflow-x: auto; }
.grid2 { display: grid; grid-template-columns: repeat(auto-fit, minmax(520px, 1fr)); gap: 16px; }
figure { margin: 0; }
figure img { max-width: 100%; height: auto; display: block; margin: 0 auto; }
figcaption { color: var(--muted); font-size: 12px; text-align: center; margin-top: 4px; }
table { border-collapse: collapse; width: 100%; margin: 6px 0 10px; }
th, td { border-bottom: 1px solid var(--line); padding: 5px 8px; text-align: left; vertical-align: top; }
th { background: var(--bg); font-weight: 600; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
td.mono, .mono { font-family: "DejaVu Sans Mono", monospace; font-size: 12px; word-break: break-all; }
.note { color: var(--muted); font-style: italic; }
pre.excerpt { white-space: pre-wrap; word-break: break-word; margin: 0; max-height: 9em; overflow: auto;
  font: 12px/1.4 "DejaVu Sans Mono", monospace; background: var(--bg); padding: 6px 8px; border-radius: 4px; }
.reason { border-left: 4px solid var(--line); padding: 2px 0 2px 12px; margin: 10px 0 14px; }
.reason.kept { border-color: #2f9e44; } .reason.filtered { border-color: #f59f00; }
.reason.duplicates { border-color: #7048e8; } .reason.dead_letter { border-color: #e03131; }
.thumbs { display: flex; flex-wrap: wrap; gap: 10px; }
.thumb { width: 150px; font-size: 11px; color: var(--muted); overflow-wrap: anywhere; }
.thumb img { width: 150px; height: 150px; object-fit: contain; background: var(--bg);
  border: 1px solid var(--line); border-radius: 4px; display: block; }
.kv td:first-child { width: 220px; color: var(--muted); }
.tag { display: inline-block; padding: 0 6px; border-radius: 4px; background: var(--bg);
  font-size: 12px; color: var(--muted); }
table.dead, table.samples, table.missing { table-layout: fixed; }
table.dead td, table.samples td, table.missing td { overflow-wrap: anywhere; }
table.dead th:nth-child(1) { width: 17%; } table.dead th:nth-child(2) { width: 22%; }
table.dead th:nth-child(3) { width: 21%; }
table.samples th:nth-child(1) { width: 16%; } table.samples th:nth-child(2) { width: 22%; }
table.missing th:nth-child(1) { width: 50%; } table.missing th:nth-child(2) { width: 15%; }
footer { color: var(--muted); font-size: 12px; text-align: center; margin-top: 24px; }
"""

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u2028\u2029\ufeff]")
_BASE64 = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")
_SCRUBBER = None


# --------------------------------------------------------------------------
# Reading the run


def _fs():
    from apache_beam.io.filesystems import FileSystems

    return FileSystems


def _join(directory: str, *parts: str) -> str:
    return _fs().join(directory, *parts)


def _read_text(path: str) -> Optional[str]:
    fs = _fs()
    try:
        if not fs.exists(path):
            return None
        with fs.open(path) as f:
            return f.read().decode("utf-8", "replace")
    except Exception as e:  # unreadable: the report says so instead of failing
        logging.warning("cannot read %s: %s", path, e)
        return None


def _read_json(path: str) -> Optional[Dict[str, Any]]:
    text = _read_text(path)
    if text is None:
        return None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as e:
        logging.warning("%s is not valid JSON: %s", path, e)
        return None
    return value if isinstance(value, dict) else None


def _match(pattern: str) -> List[str]:
    try:
        return sorted(m.path for m in _fs().match([pattern])[0].metadata_list)
    except Exception:
        return []


def _jsonl(paths: Iterable[str]) -> Iterator[Dict[str, Any]]:
    fs = _fs()
    for path in paths:
        try:
            with fs.open(path) as f:
                for raw in io.TextIOWrapper(f, encoding="utf-8", errors="replace"):
                    raw = raw.strip()
                    if not raw:
                        continue
                    try:
                        row = json.loads(raw)
                    except json.JSONDecodeError:
                        continue
                    if isinstance(row, dict):
                        yield row
        except Exception as e:
            logging.warning("cannot read %s: %s", path, e)


class _Samples:
    """At most ``limit`` rows per (kind, reason), and how many there were in all."""

    def __init__(self, limit: int = SAMPLES_PER_REASON):
        self.limit = limit
        self.rows: Dict[Tuple[str, str], List[Dict[str, Any]]] = collections.defaultdict(list)
        self.seen: Dict[Tuple[str, str], int] = collections.Counter()

    def add(self, key: Tuple[str, str], row: Dict[str, Any]) -> None:
        self.seen[key] += 1
        if len(self.rows[key]) < self.limit:
            self.rows[key].append(row)


def _load_samples(directory: str) -> Tuple[_Samples, bool]:
    paths = _match(_join(directory, "samples*.jsonl")) + _match(_join(directory, "samples", "*.jsonl"))
    samples = _Samples()
    for row in _jsonl(paths):
        kind = str(row.get("kind") or "")
        if kind not in KIND_TITLES:
            continue
        samples.add((kind, str(row.get("reason") or "")), row)
    return samples, bool(paths)


def _load_dead_letter(directory: str) -> _Samples:
    dead = _Samples()
    for row in _jsonl(_match(_join(directory, "dead_letter", "*.jsonl"))):
        dead.add(("dead_letter", str(row.get("reason") or "")), row)
    return dead


# --------------------------------------------------------------------------
# Numbers


def _num(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def _counts(stats: Dict[str, Any], key: str) -> Dict[str, int]:
    value = stats.get(key)
    if not isinstance(value, dict):
        return {}
    return {str(k): int(_num(v)) for k, v in value.items()}


def _pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "–"


def _bytes(n: Any) -> str:
    v = _num(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1024
    return f"{v:,.1f} TiB"


def _removals(stats: Dict[str, Any]) -> List[Tuple[str, str, int]]:
    """(kind, reason, n) of every way out but the shards, biggest first within a kind."""
    rows = []
    for kind in ("filtered", "duplicates", "dead_letter"):
        items = sorted(_counts(stats, kind).items(), key=lambda kv: (-kv[1], kv[0]))
        rows += [(kind, reason, n) for reason, n in items if n]
    return rows


# --------------------------------------------------------------------------
# Plots (matplotlib's Agg canvas; no pyplot, no global state)


def _figure(width: float, height: float):
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=110)
    return fig


def _png(fig) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight", facecolor="white")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def _style(ax) -> None:
    for side in ("top", "right"):
        ax.spines[side].set_visible(False)
    ax.tick_params(labelsize=9)


def _waterfall(stats: Dict[str, Any]) -> Optional[str]:
    records_in = int(_num(stats.get("records_in")))
    records_out = int(_num(stats.get("records_out")))
    removals = _removals(stats)
    if not records_in and not records_out:
        return None
    labels = ["records in"]
    lefts = [0]
    widths = [records_in]
    colours = [COLOURS["in"]]
    level = records_in
    for kind, reason, n in removals:
        level -= n
        labels.append(f"{KIND_TITLES[kind].lower()}: {reason or '(none)'}")
        lefts.append(level)
        widths.append(n)
        colours.append(COLOURS[kind])
    labels.append("records out")
    lefts.append(0)
    widths.append(records_out)
    colours.append(COLOURS["out"])
    gap = level - records_out  # non-zero only when the identity is broken

    rows = len(labels)
    fig = _figure(10, max(2.6, 0.3 * rows + 1.2))
    ax = fig.add_subplot()
    ys = list(range(rows))
    ax.barh(ys, widths, left=lefts, color=colours, height=0.7, edgecolor="white")
    for y in ys[:-1]:  # connectors: the level after bar y is where bar y + 1 starts
        x = widths[0] if y == 0 else lefts[y]
        ax.plot([x, x], [y + 0.35, y + 0.65], color="#9aa5b1", linewidth=0.8)
    scale = max(records_in, records_out, 1)
    for y, (left, width) in enumerate(zip(lefts, widths)):
        if y in (0, rows - 1):
            text = f"{width:,}"
        else:
            text = f"−{width:,} ({_pct(width, records_in)})"
        ax.text(left + width + scale * 0.01, y, text, va="center", fontsize=8.5, color="#1f2933")
    ax.set_yticks(ys)
    ax.set_yticklabels(labels, fontsize=9)
    ax.invert_yaxis()
    ax.set_xlim(0, scale * 1.22)
    ax.set_xlabel("records")
    title = "From records in to records out: one bar per reason"
    if gap:
        title += f"  (identity broken: {gap:+,} records unaccounted)"
    ax.set_title(title, fontsize=11, loc="left", color="#c92a2a" if gap else "#1f2933")
    from matplotlib.patches import Patch

    present = ["in"] + sorted({k for k, _, _ in removals},
                              key=["filtered", "duplicates", "dead_letter"].index) + ["out"]
    names = {"in": "records in", "out": "records out", **{k: KIND_TITLES[k].lower() for k in KIND_TITLES}}
    ax.legend(handles=[Patch(color=COLOURS[k], label=names[k]) for k in present],
              loc="lower right", fontsize=8, frameon=False)
    ax.grid(axis="x", color="#e4e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    _style(ax)
    return _png(fig)


def _bucket_width(lower: int) -> int:
    """Width of the bucket starting at ``lower`` (transforms.write.shards.histogram_bucket)."""
    if lower < 16:
        return 1
    return 1 << (lower.bit_length() - 4)


def _histogram(name: str, hist: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    try:
        bounds = [int(_num(b)) for b in hist["bucket_lower_bounds"]]
        counts = [int(_num(c)) for c in hist["counts"]]
    except (KeyError, TypeError):
        return None
    if not bounds or len(bounds) != len(counts):
        return None
    pairs = sorted(zip(bounds, counts))
    title, xlabel, divisor, exact = HISTOGRAMS.get(
        name, (name.replace("_", " ").capitalize(), name, 1, False))
    widths = [1 if exact else _bucket_width(b) for b, _ in pairs]
    lows = [b for b, _ in pairs]
    ns = [c for _, c in pairs]
    total = sum(ns)
    # median of the bucketed distribution: the lower bound of the bucket holding it
    running, median = 0, lows[0]
    for low, n in zip(lows, ns):
        running += n
        if running * 2 >= total:
            median = low
            break
    log_x = min(lows) >= 1 and (max(lows) + widths[-1]) / min(lows) >= 16
    fig = _figure(6, 3.1)
    ax = fig.add_subplot()
    xs = [low / divisor for low in lows]
    ws = [w / divisor for w in widths]
    from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

    if exact:
        ax.bar(xs, ns, width=0.6, color=COLOURS["neutral"], edgecolor="white")
        ax.set_xlim(min(xs) - 1, max(max(xs) + 1, min(xs) + 6))
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    else:
        ax.bar(xs, ns, width=ws, align="edge", color=COLOURS["neutral"], edgecolor="white",
               linewidth=0.5)
        if len(xs) <= 2 and not log_x:  # a lone bar would fill the whole axis
            span = xs[-1] + ws[-1] - xs[0]
            ax.set_xlim(xs[0] - span, xs[-1] + ws[-1] + span)
        if log_x:
            ax.set_xscale("log")
            ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            ax.xaxis.set_minor_formatter(NullFormatter())
            ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}" if v >= 1 else f"{v:g}"))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    med = f"{median / divisor:,.2f}" if divisor != 1 else f"{median:,}"
    ax.set_title(title, fontsize=11, loc="left")
    ax.set_xlabel(xlabel + (" (log scale)" if log_x and not exact else ""), fontsize=9)
    ax.set_ylabel("count", fontsize=9)
    ax.grid(axis="y", color="#e4e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    _style(ax)
    caption = (f"n = {total:,}; median ≈ {med}" if exact else
               f"n = {total:,} in {len(lows)} non-empty buckets (8 per doubling); median bucket ≥ {med}")
    return _png(fig), caption


def _bars(title: str, items: Sequence[Tuple[str, float]], xlabel: str, colour: str,
          annotate=None) -> str:
    items = list(items)
    fig = _figure(6, max(1.6, 0.34 * len(items) + 1.0))
    ax = fig.add_subplot()
    ys = list(range(len(items)))
    values = [v for _, v in items]
    ax.barh(ys, values, color=colour, height=0.65 if len(items) > 2 else 0.45)
    ax.set_ylim(len(items) - 0.5 + (0.3 if len(items) < 3 else 0), -0.5 - (0.3 if len(items) < 3 else 0))
    ax.set_yticks(ys)
    ax.set_yticklabels([k for k, _ in items], fontsize=9)
    top = max(values) if values and max(values) > 0 else 1
    ax.set_xlim(0, top * 1.35)
    if all(float(v).is_integer() for v in values):
        from matplotlib.ticker import MaxNLocator

        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    for y, (k, v) in enumerate(items):
        text = annotate(k, v) if annotate else f"{v:,.0f}"
        ax.text(v + top * 0.015, y, text, va="center", fontsize=8.5)
    ax.set_xlabel(xlabel, fontsize=9)
    ax.set_title(title, fontsize=11, loc="left")
    ax.grid(axis="x", color="#e4e7eb", linewidth=0.6)
    ax.set_axisbelow(True)
    _style(ax)
    return _png(fig)


def _secs(s: float) -> str:
    return f"{s:,.1f}" if s >= 10 else f"{s:.2f}" if s >= 0.1 else f"{s:.3f}"


def _timing(stats: Dict[str, Any]) -> Optional[Tuple[str, List[Tuple[str, float, int]]]]:
    timing = stats.get("timing")
    if not isinstance(timing, dict) or not timing:
        return None
    rows = []
    for stage, value in timing.items():
        if isinstance(value, dict):
            rows.append((str(stage), max(0.0, _num(value.get("seconds"))), int(_num(value.get("calls")))))
        else:
            rows.append((str(stage), max(0.0, _num(value)), 0))
    rows.sort(key=lambda r: (-r[1], r[0]))
    total = sum(r[1] for r in rows)
    if not rows:
        return None
    shares = [(stage, 100.0 * s / total if total else 0.0) for stage, s, _ in rows]
    seconds = {stage: (s, calls) for stage, s, calls in rows}

    def note(stage, share):
        s, calls = seconds[stage]
        return f"{share:.1f}%  ({_secs(s)} s, {calls:,} calls)"

    png = _bars("Time share per stage", shares, "% of the measured time", COLOURS["in"], note)
    return png, rows


# --------------------------------------------------------------------------
# HTML


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _visible(text: str) -> str:
    """Control characters as visible escapes, so broken inputs cannot garble the page."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}" if ord(m.group()) < 256
                        else f"\\u{ord(m.group()):04x}", text)


def _shorten(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit].rstrip() + " …"


def _scrub(text: str) -> str:
    global _SCRUBBER
    if not text:
        return ""
    try:
        if _SCRUBBER is None:
            from transforms.text.pii import PiiScrubber

            _SCRUBBER = PiiScrubber()
        return _SCRUBBER.scrub(text)[0]
    except Exception:  # never show what could not be scrubbed
        return "[excerpt withheld: PII scrubber failed]"


def _scrub_field(row: Dict[str, Any], key: str) -> str:
    """``row[key]`` as text, PII-scrubbed: every input-derived string the page shows."""
    value = row.get(key)
    return "" if value is None else _scrub(str(value))


def _thumbnail(value: Any) -> Optional[str]:
    """A data URI for a base64 JPEG, or None when it is not plain base64 of a JPEG or PNG."""
    if not isinstance(value, str):
        return None
    compact = "".join(value.split())
    if compact.startswith("data:image/jpeg;base64,"):
        compact = compact[len("data:image/jpeg;base64,"):]
    if not compact or len(compact) > MAX_THUMBNAIL_B64 or not _BASE64.match(compact):
        return None
    try:
        head = base64.b64decode(compact[:16] + "=" * (-len(compact[:16]) % 4))
    except (binascii.Error, ValueError):
        return None
    if head.startswith(b"\xff\xd8"):
        return "data:image/jpeg;base64," + compact
    if head.startswith(b"\x89PNG"):
        return "data:image/png;base64," + compact
    return None


def _table(headers: Sequence[str], rows: Iterable[Sequence[Any]], numeric: Sequence[int] = (),
           cls: str = "") -> str:
    numeric = set(numeric)
    out = [f'<table class="{_e(cls)}">' if cls else "<table>", "<thead><tr>"]
    out += [f'<th class="num">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>"
            for i, h in enumerate(headers)]
    out.append("</tr></thead><tbody>")
    for row in rows:
        out.append("<tr>" + "".join(
            f'<td class="num">{cell}</td>' if i in numeric else f"<td>{cell}</td>"
            for i, cell in enumerate(row)) + "</tr>")
    out.append("</tbody></table>")
    return "".join(out)


def _figure_html(uri: str, alt: str, caption: str = "") -> str:
    cap = f"<figcaption>{_e(caption)}</figcaption>" if caption else ""
    return f'<figure><img src="{uri}" alt="{_e(alt)}">{cap}</figure>'


def _kv(rows: Iterable[Tuple[str, str]]) -> str:
    return ('<table class="kv"><tbody>'
            + "".join(f"<tr><td>{_e(k)}</td><td>{v}</td></tr>" for k, v in rows)
            + "</tbody></table>")


def _summary(stats: Dict[str, Any], manifest: Dict[str, Any]) -> str:
    records_in = int(_num(stats.get("records_in")))
    records_out = int(_num(stats.get("records_out")))
    parts = {k: sum(_counts(stats, k).values()) for k in ("filtered", "duplicates", "dead_letter")}
    total = records_out + sum(parts.values())
    holds = records_in == total
    recorded = (stats.get("accounting") or {}).get("holds")
    cards = [("in", "records in", records_in), ("out", "records out", records_out),
             ("filtered", "filtered", parts["filtered"]), ("duplicates", "duplicates", parts["duplicates"]),
             ("dead_letter", "dead letter", parts["dead_letter"])]
    html_cards = "".join(
        f'<div class="card {cls}"><div class="label">{_e(label)}</div>'
        f'<div class="value">{n:,}</div>'
        f'<div class="pct">{"" if cls == "in" else _pct(n, records_in) + " of records in"}</div></div>'
        for cls, label, n in cards)
    verdict = ('<span class="ok">✔ holds</span>' if holds
               else f'<span class="bad">✘ broken: {records_in - total:+,} records unaccounted</span>')
    equation = (f"records_in {records_in:,} = records_out {records_out:,} + filtered "
                f"{parts['filtered']:,} + duplicates {parts['duplicates']:,} + dead_letter "
                f"{parts['dead_letter']:,} = {total:,}")
    rows = [
        ("records in", f"{records_in:,}", ""),
        ("records out (written to shards)", f"{records_out:,}", _pct(records_out, records_in)),
        ("filtered (sum of the rules)", f"{parts['filtered']:,}", _pct(parts["filtered"], records_in)),
        ("duplicates (exact + near)", f"{parts['duplicates']:,}", _pct(parts["duplicates"], records_in)),
        ("dead letter (broken inputs)", f"{parts['dead_letter']:,}", _pct(parts["dead_letter"], records_in)),
        ("records out + filtered + duplicates + dead letter", f"{total:,}", _pct(total, records_in)),
    ]
    extra = []
    if recorded is not None and bool(recorded) != holds:
        extra.append(f'<p class="bad">stats.json records holds={_e(recorded)}, but its numbers say '
                     f'{"it holds" if holds else "it does not"}.</p>')
    threshold = (manifest.get("config") or {}).get("max_dead_letter_fraction")
    if threshold is not None and records_in:
        share = parts["dead_letter"] / records_in
        ok = share <= _num(threshold)
        extra.append(f'<p>Dead-letter share {share:.1%} '
                     f'{"≤" if ok else "&gt;"} max_dead_letter_fraction {_num(threshold):.1%}: '
                     f'<span class="{"ok" if ok else "bad"}">{"within" if ok else "over"} the limit</span></p>')
    return (
        '<section id="summary"><h2>Accounting</h2>'
        f'<div class="cards">{html_cards}</div>'
        f'<p class="identity">{_e(equation)} &nbsp; {verdict}</p>'
        + _table(["", "records", "share of records in"],
                 [(_e(a), b, c) for a, b, c in rows], numeric=(1, 2))
        + "".join(extra)
        + f'<p class="note">Identity: {_e((stats.get("accounting") or {}).get("identity", ""))}</p>'
        "</section>"
    )


def _outputs(stats: Dict[str, Any], manifest: Dict[str, Any]) -> str:
    splits = stats.get("splits") if isinstance(stats.get("splits"), dict) else {}
    by_split = _counts(stats, "records_out_by_split")
    names = sorted(set(splits) | set(by_split))
    info = _counts(stats, "info")
    shard_bytes: Dict[str, int] = collections.Counter()
    for s in manifest.get("shards") or []:
        if isinstance(s, dict):
            shard_bytes[str(s.get("split"))] += int(_num(s.get("bytes")))
    rows = []
    for name in names:
        entry = splits.get(name) if isinstance(splits.get(name), dict) else {}
        records = int(_num(entry.get("records", by_split.get(name, 0))))
        tokens = int(_num(entry.get("tokens", info.get(f"tokens.{name}", 0))))
        rows.append([_e(name), records, int(_num(entry.get("shards"))), tokens, shard_bytes.get(name, 0)])
    with_tokens = any(r[3] for r in rows)
    headers = ["split", "records", "shards"] + (["tokens", "tokens / record"] if with_tokens else []) + ["bytes"]

    def cells(name, records, shards, tokens, size, bold=False):
        row = [name, f"{records:,}", f"{shards:,}" if shards else ""]
        if with_tokens:
            row += [f"{tokens:,}", f"{tokens / records:,.1f}" if records and tokens else "–"]
        row.append(_bytes(size))
        return [f"<b>{c}</b>" if bold and c else c for c in row]

    table_rows = [cells(*r) for r in rows]
    if len(rows) > 1:
        table_rows.append(cells("total", sum(r[1] for r in rows), sum(r[2] for r in rows),
                                sum(r[3] for r in rows), sum(r[4] for r in rows), bold=True))
    body = (_table(headers, table_rows, numeric=range(1, len(headers))) if rows
            else '<p class="note">no splits recorded</p>')
    shards = [s for s in manifest.get("shards") or [] if isinstance(s, dict)]
    if shards:
        shown = shards[:MAX_INPUT_ROWS]
        body += "<h3>Shards</h3>" + _table(
            ["path", "split", "records", "bytes", "sha256"],
            [(f'<span class="mono">{_e(s.get("path"))}</span>', _e(s.get("split")),
              f"{int(_num(s.get('records'))):,}", _bytes(s.get("bytes")),
              f'<span class="mono">{_e(str(s.get("sha256", ""))[:16])}…</span>') for s in shown],
            numeric=(2, 3))
        if len(shards) > len(shown):
            body += f'<p class="note">… and {len(shards) - len(shown):,} more shards</p>'
    return f'<section id="outputs"><h2>Records per split</h2>{body}</section>'


def _manifest(manifest: Dict[str, Any], have_manifest: bool) -> str:
    if not have_manifest:
        return ('<section id="manifest"><h2>Manifest</h2>'
                '<p class="note">no manifest.json in this directory</p></section>')
    code = manifest.get("code_version") if isinstance(manifest.get("code_version"), dict) else {}
    tokenizer = manifest.get("tokenizer") if isinstance(manifest.get("tokenizer"), dict) else None
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    kv = [("dataset version", f'<b class="mono">{_e(manifest.get("dataset_version", "–"))}</b>'),
          ("content sha256", f'<span class="mono">{_e(manifest.get("content_sha256", "–"))}</span>')]
    kv += [(f"code: {k}", f'<span class="mono">{_e(v)}</span>') for k, v in sorted(code.items())]
    if tokenizer:
        kv.append(("tokenizer", f'<span class="mono">{_e(tokenizer.get("path"))} '
                                f'(sha256 {_e(str(tokenizer.get("sha256", ""))[:16])}…)</span>'))
    if config.get("steps"):
        kv.append(("steps", _e(", ".join(map(str, config["steps"])))))
    if config.get("inputs"):
        kv.append(("input globs", "<br>".join(f'<span class="mono">{_e(g)}</span>' for g in config["inputs"])))
    inputs = [i for i in manifest.get("inputs") or [] if isinstance(i, dict)]
    body = _kv(kv)
    body += f"<h3>Inputs ({len(inputs):,} files, {_bytes(sum(_num(i.get('size')) for i in inputs))})</h3>"
    if inputs:
        def mtime(v):
            try:
                return datetime.datetime.fromtimestamp(float(v), datetime.timezone.utc).strftime(
                    "%Y-%m-%d %H:%M UTC")
            except (TypeError, ValueError, OverflowError, OSError):
                return "–"

        shown = inputs[:MAX_INPUT_ROWS]
        body += _table(["path", "size", "modified"],
                       [(f'<span class="mono">{_e(i.get("path"))}</span>', _bytes(i.get("size")),
                         _e(mtime(i.get("mtime")))) for i in shown], numeric=(1,))
        if len(inputs) > len(shown):
            body += f'<p class="note">… and {len(inputs) - len(shown):,} more inputs</p>'
    if config:
        body += ("<details><summary>Full configuration</summary><pre class=\"excerpt\">"
                 + _e(_visible(json.dumps(config, indent=2, sort_keys=True, default=str)))
                 + "</pre></details>")
    return f'<section id="manifest"><h2>Manifest</h2>{body}</section>'


def _records(n: int) -> str:
    return f"{n:,} record" + ("" if n == 1 else "s")


def _excerpt_cell(text: str, limit: int) -> str:
    if not text.strip():
        return '<span class="note">(empty)</span>'
    return f'<pre class="excerpt">{_e(_visible(_shorten(text, limit)))}</pre>'


def _sample_block(kind: str, reason: str, count: Optional[int], samples: _Samples) -> str:
    """The samples.jsonl rows of one (kind, reason): excerpts, or thumbnails for images."""
    key = (kind, reason)
    title = f"{KIND_TITLES[kind]}: {reason}" if reason else KIND_TITLES[kind]
    if count is not None:
        title += f" — {_records(count)}"
    rows = samples.rows[key]
    thumbs = [(r, _thumbnail(r.get("thumbnail"))) for r in rows]
    if any(uri for _, uri in thumbs):
        cells = []
        for r, uri in thumbs:
            rid = _scrub_field(r, "id")
            img = (f'<img src="{uri}" alt="thumbnail of {_e(rid)}">' if uri
                   else '<div class="note">no thumbnail</div>')
            text = _shorten(_scrub_field(r, "excerpt"), 120)
            source = _scrub_field(r, "source").rstrip("/").rsplit("/", 1)[-1]
            cells.append(f'<div class="thumb">{img}<div class="mono">{_e(_visible(rid))}</div>'
                         f'<div>{_e(_visible(_shorten(source, 60)))}</div>'
                         f'<div>{_e(_visible(text))}</div></div>')
        body = f'<div class="thumbs">{"".join(cells)}</div>'
    else:
        body = _table(["id", "source", "excerpt (PII-scrubbed)"], [
            (f'<span class="mono">{_e(_visible(_scrub_field(r, "id")))}</span>',
             f'<span class="mono">{_e(_visible(_scrub_field(r, "source")))}</span>',
             _excerpt_cell(_scrub_field(r, "excerpt"), SAMPLE_EXCERPT_CHARS))
            for r in rows], cls="samples")
    shown = f"{len(rows)} of {samples.seen[key]:,} recorded sample" + ("" if samples.seen[key] == 1 else "s")
    return (f'<div class="reason {kind}"><h4>{_e(title)} <span class="tag">{_e(shown)}</span></h4>'
            f"{body}</div>")


def _dead_letter_table(reasons: Sequence[Tuple[str, int]], dead: _Samples) -> str:
    """Dead-letter reasons without samples: the dead letter's own entries, one table."""
    rows = []
    for reason, n in reasons:
        entries = dead.rows[("dead_letter", reason)]
        for i, r in enumerate(entries):
            # raw when the run kept them raw (--dead_letter_raw): scrubbed here, then shortened
            excerpt = _scrub_field(r, "raw_excerpt")
            detail = _scrub_field(r, "detail")
            rid = _scrub_field(r, "id")
            label = (f'<b>{_e(reason)}</b><br><span class="note">{_e(_records(n))}, '
                     f'{len(entries)} shown</span>') if i == 0 else ""
            rows.append((
                label,
                f'<span class="mono">{_e(_visible(_scrub_field(r, "source")))}</span><br>'
                f'<span class="note">{_e(r.get("unit", ""))} {int(_num(r.get("position"))):,}</span>'
                + (f'<br><span class="mono">id {_e(_visible(rid))}</span>' if rid else ""),
                _e(_visible(_shorten(detail, 200))),
                _excerpt_cell(excerpt, DEAD_EXCERPT_CHARS)))
    return _table(["reason", "source", "detail", "raw excerpt (broken input, shortened)"], rows,
                  cls="dead")


def _samples_section(stats: Dict[str, Any], samples: _Samples, dead: _Samples, have_file: bool) -> str:
    by_kind: Dict[str, List[Tuple[str, Optional[int]]]] = collections.OrderedDict(
        (k, []) for k in KIND_TITLES)
    kept_keys = sorted(k[1] for k in samples.rows if k[0] == "kept")
    records_out = int(_num(stats.get("records_out")))
    by_kind["kept"] = [(r, None) for r in kept_keys] or [("", records_out)]
    listed = set()
    for kind, reason, n in _removals(stats):
        listed.add((kind, reason))
        by_kind[kind].append((reason, n))
    for kind, reason in sorted(k for k in samples.rows if k[0] != "kept" and k not in listed):
        by_kind[kind].append((reason, None))

    parts = []
    for kind, reasons in by_kind.items():
        if not reasons:
            continue
        total = records_out if kind == "kept" else sum(_counts(stats, kind).values())
        blocks, fallback, missing = [], [], []
        for reason, n in reasons:
            if samples.rows.get((kind, reason)):
                blocks.append(_sample_block(kind, reason, n, samples))
            elif kind == "dead_letter" and dead.rows.get((kind, reason)):
                fallback.append((reason, n or 0))
            else:
                missing.append((reason, n))
        html_parts = blocks
        if fallback:
            html_parts.append(f'<div class="reason {kind}"><p class="note">From the dead letter '
                              "(no samples recorded for these reasons): raw excerpts of the broken "
                              "inputs, shortened, PII-scrubbed and escaped.</p>"
                              + _dead_letter_table(fallback, dead) + "</div>")
        if missing:
            html_parts.append(f'<div class="reason {kind}">' + _table(
                ["reason", "records", "samples"],
                [(_e(reason or KIND_TITLES[kind].lower()), "" if n is None else f"{n:,}",
                  '<span class="note">no samples recorded</span>') for reason, n in missing],
                numeric=(1,), cls="missing") + "</div>")
        parts.append(f"<h3>{_e(KIND_TITLES[kind])} <span class=\"tag\">{_e(_records(total))}</span></h3>"
                     + "".join(html_parts))
    intro = ("Excerpts come from samples.jsonl, PII-scrubbed by the pipeline."
             if have_file else
             "This run recorded no samples.jsonl: dead-letter reasons show the dead letter's "
             "raw excerpts (shortened, scrubbed, escaped); other reasons have no samples.")
    return (f'<section id="samples"><h2>Sample records per reason</h2><p class="note">{_e(intro)}</p>'
            + "".join(parts) + "</section>")


def _other(stats: Dict[str, Any]) -> str:
    parts = []
    for key, title in (("lines_removed", "Lines removed by line-level rules"),
                       ("license", "Licences seen"), ("info", "Other counters")):
        values = _counts(stats, key)
        if values:
            # licence names come from the input records: scrubbed like any input text
            parts.append(f"<div><h3>{_e(title)}</h3>" + _table(
                ["name", "count"], [(f'<span class="mono">{_e(_visible(_scrub(k)))}</span>', f"{v:,}")
                                    for k, v in sorted(values.items())], numeric=(1,)) + "</div>")
    nd = stats.get("near_dedup")
    if isinstance(nd, dict) and nd:
        parts.append("<div><h3>Near-duplicate detection</h3>" + _table(
            ["name", "value"], [(f'<span class="mono">{_e(k)}</span>', _e(v if not isinstance(v, list)
                                  else ", ".join(map(str, v)))) for k, v in sorted(nd.items())],
            numeric=()) + "</div>")
    if not parts:
        return ""
    return f'<section id="other"><h2>Other counters</h2><div class="grid2">{"".join(parts)}</div></section>'


def _sha256_b64(text: str) -> str:
    return base64.b64encode(hashlib.sha256(text.encode("utf-8")).digest()).decode("ascii")


def render(directory: str, stats: Dict[str, Any], manifest: Optional[Dict[str, Any]],
           samples: _Samples, have_samples_file: bool, dead: _Samples) -> str:
    """The report's HTML for already-loaded inputs."""
    have_manifest = manifest is not None
    manifest = manifest or {}
    config = manifest.get("config") if isinstance(manifest.get("config"), dict) else {}
    info = _counts(stats, "info")
    is_images = any(k.startswith("format.") for k in info) or any(
        k.startswith("image_") for k in (stats.get("histograms") or {}))
    kind = str(config.get("kind") or ("images" if is_images else "text"))

    sections = [_summary(stats, manifest)]
    waterfall = _waterfall(stats)
    if waterfall:
        sections.append('<section id="waterfall"><h2>Where the records went</h2>'
                        + _figure_html(waterfall, "waterfall from records in to records out",
                                       "Each bar removes the records of one reason; orange: filter "
                                       "rules, purple: duplicates, red: dead letter.")
                        + "</section>")
    sections.append(_outputs(stats, manifest))

    figures = []
    hists = stats.get("histograms") if isinstance(stats.get("histograms"), dict) else {}
    order = [n for n in HISTOGRAMS if n in hists] + sorted(n for n in hists if n not in HISTOGRAMS)
    for name in order:
        made = _histogram(name, hists[name]) if isinstance(hists[name], dict) else None
        if made:
            figures.append(_figure_html(made[0], f"histogram of {name}", made[1]))
    if figures:
        sections.append('<section id="histograms"><h2>Distributions</h2>'
                        f'<div class="grid2">{"".join(figures)}</div></section>')

    more = []
    pii = _counts(stats, "pii")
    if pii:
        docs = info.get("pii.documents_with_findings")
        caption = f"{sum(pii.values()):,} findings" + (f" in {docs:,} documents" if docs else "") + \
            "; each is replaced in the output"
        more.append(_figure_html(_bars("PII findings by kind", sorted(pii.items(), key=lambda kv: -kv[1]),
                                       "findings", "#d6336c"), "PII findings by kind", caption))
    elif kind != "images":
        more.append('<div><h3>PII findings by kind</h3><p class="note">no PII found '
                    '(or the pii step did not run)</p></div>')
    formats = sorted(((k[len("format."):], v) for k, v in info.items() if k.startswith("format.")),
                     key=lambda kv: -kv[1])
    if formats:
        more.append(_figure_html(_bars("Image formats (inputs identified)", formats, "images", "#1098ad"),
                                 "image formats", f"{sum(v for _, v in formats):,} images identified"))
    timing = _timing(stats)
    if timing:
        png, rows = timing
        total = sum(r[1] for r in rows)
        more.append("<div>" + _figure_html(
            png, "time share per stage",
            f"{_secs(total)} s measured over {len(rows)} stages (summed over workers)")
            + _table(["stage", "seconds", "calls", "share"],
                     [(_e(stage), _secs(sec), f"{calls:,}", _pct(sec, total)) for stage, sec, calls in rows],
                     numeric=(1, 2, 3)) + "</div>")
    else:
        more.append('<div><h3>Time per stage</h3><p class="note">no timing recorded in stats.json</p></div>')
    sections.append('<section id="breakdowns"><h2>PII, formats and time</h2>'
                    f'<div class="grid2">{"".join(more)}</div></section>')

    sections.append(_samples_section(stats, samples, dead, have_samples_file))
    sections.append(_manifest(manifest, have_manifest))
    other = _other(stats)
    if other:
        sections.append(other)

    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    version = manifest.get("dataset_version", "–")
    css = _CSS
    csp = ("default-src 'none'; img-src data:; "
           f"style-src 'sha256-{_sha256_b64(css)}'; script-src 'sha256-{_sha256_b64(_SCRIPT)}'; "
           "base-uri 'none'; form-action 'none'")
    title = f"beamtrain report: {kind} dataset {version}"
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
        f'<meta http-equiv="Content-Security-Policy" content="{_e(csp)}">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{_e(title)}</title><style>{css}</style>"
        f"<script>{_SCRIPT}</script></head>"
        '<body data-images-loaded="pending">'
        f'<header><h1>{_e(title)}</h1><div class="sub">{_e(directory)} · generated {_e(now)}'
        f' · <span class="tag">{"identity holds" if identity_ok(stats) else "IDENTITY BROKEN"}</span>'
        "</div></header><main>"
        + "".join(sections)
        + '<footer>Written by <span class="mono">python -m beam_pipelines.report</span>; '
          "self-contained: no network access needed.</footer></main></body></html>\n"
    )


def identity_ok(stats: Dict[str, Any]) -> bool:
    return int(_num(stats.get("records_in"))) == int(_num(stats.get("records_out"))) + sum(
        sum(_counts(stats, k).values()) for k in ("filtered", "duplicates", "dead_letter"))


def build_report(directory: str, output: Optional[str] = None) -> str:
    """Write ``directory/report.html`` (or ``output``) for a pipeline's output directory.

    Returns the path written. Raises FileNotFoundError when there is no stats.json.
    """
    directory = str(directory)
    stats = _read_json(_join(directory, "stats.json"))
    if stats is None:
        raise FileNotFoundError(f"no readable stats.json in {directory}")
    manifest = _read_json(_join(directory, "manifest.json"))
    samples, have_samples = _load_samples(directory)
    dead = _load_dead_letter(directory)
    page = render(directory, stats, manifest, samples, have_samples, dead)
    path = output or _join(directory, REPORT_NAME)
    with _fs().create(path) as f:
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


if __name__ == "__main__":
    logging.basicConfig(level=logging.WARNING)
    sys.exit(main())
