"""The report's plots: waterfall, histograms, horizontal bars, as base64 PNG data URIs.

matplotlib's Agg canvas; no pyplot, no global state.
"""

from __future__ import annotations

import base64
import io
from typing import Any, Dict, List, Optional, Sequence, Tuple

from beam_pipelines.report.stats import KIND_TITLES, num, pct, removals_by_reason, secs

__all__ = ["COLOURS", "HISTOGRAMS", "waterfall_chart", "histogram_chart", "bar_chart", "timing_chart"]

# Colours of the three ways a record leaves the pipeline, and of the survivors.
COLOURS = {
    "in": "#4c78a8",
    "out": "#2f9e44",
    "filtered": "#f59f00",
    "duplicates": "#7048e8",
    "dead_letter": "#e03131",
    "neutral": "#5c7cfa",
}
HISTOGRAMS = {
    # name: (title, x label, divide the bucket bounds by, exact values (no bucket width))
    "chars_per_doc": ("Characters per document (kept)", "characters", 1, False),
    "tokens_per_doc": ("Tokens per document (kept)", "tokens", 1, False),
    "near_dup_cluster_size": ("Near-duplicate cluster size", "documents in the cluster", 1, True),
    "image_long_side": ("Image long side (before resizing)", "pixels", 1, False),
    "image_aspect_ratio_x100": ("Image aspect ratio (width / height)", "width / height", 100, False),
}


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


def waterfall_chart(stats: Dict[str, Any]) -> Optional[str]:
    records_in = int(num(stats.get("records_in")))
    records_out = int(num(stats.get("records_out")))
    removals = removals_by_reason(stats)
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
            text = f"−{width:,} ({pct(width, records_in)})"
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


def histogram_chart(name: str, hist: Dict[str, Any]) -> Optional[Tuple[str, str]]:
    try:
        bounds = [int(num(b)) for b in hist["bucket_lower_bounds"]]
        counts = [int(num(c)) for c in hist["counts"]]
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


def bar_chart(title: str, items: Sequence[Tuple[str, float]], xlabel: str, colour: str,
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


def timing_chart(stats: Dict[str, Any]) -> Optional[Tuple[str, List[Tuple[str, float, int]]]]:
    timing = stats.get("timing")
    if not isinstance(timing, dict) or not timing:
        return None
    rows = []
    for stage, value in timing.items():
        if isinstance(value, dict):
            rows.append((str(stage), max(0.0, num(value.get("seconds"))), int(num(value.get("calls")))))
        else:
            rows.append((str(stage), max(0.0, num(value)), 0))
    rows.sort(key=lambda r: (-r[1], r[0]))
    total = sum(r[1] for r in rows)
    if not rows:
        return None
    shares = [(stage, 100.0 * s / total if total else 0.0) for stage, s, _ in rows]
    seconds = {stage: (s, calls) for stage, s, calls in rows}

    def note(stage, share):
        s, calls = seconds[stage]
        return f"{share:.1f}%  ({secs(s)} s, {calls:,} calls)"

    png = bar_chart("Time share per stage", shares, "% of the measured time", COLOURS["in"], note)
    return png, rows
