"""The numbers of stats.json, read defensively, and how the page writes them."""

from __future__ import annotations

import math
from typing import Any, Dict, List, Tuple

__all__ = ["KIND_TITLES", "num", "counts", "pct", "human_bytes", "secs", "n_records", "removals_by_reason",
           "identity_ok"]

KIND_TITLES = {
    "kept": "Kept",
    "filtered": "Filtered",
    "duplicates": "Duplicates",
    "dead_letter": "Dead letter",
}


def num(value: Any) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        return 0.0
    return v if math.isfinite(v) else 0.0


def counts(stats: Dict[str, Any], key: str) -> Dict[str, int]:
    value = stats.get(key)
    if not isinstance(value, dict):
        return {}
    return {str(k): int(num(v)) for k, v in value.items()}


def pct(part: float, whole: float) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else "–"


def human_bytes(n: Any) -> str:
    v = num(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if v < 1024 or unit == "TiB":
            return f"{v:,.0f} {unit}" if unit == "B" else f"{v:,.1f} {unit}"
        v /= 1024
    return f"{v:,.1f} TiB"


def removals_by_reason(stats: Dict[str, Any]) -> List[Tuple[str, str, int]]:
    """(kind, reason, n) of every way out but the shards, biggest first within a kind."""
    rows = []
    for kind in ("filtered", "duplicates", "dead_letter"):
        items = sorted(counts(stats, kind).items(), key=lambda kv: (-kv[1], kv[0]))
        rows += [(kind, reason, n) for reason, n in items if n]
    return rows


def secs(s: float) -> str:
    return f"{s:,.1f}" if s >= 10 else f"{s:.2f}" if s >= 0.1 else f"{s:.3f}"


def n_records(n: int) -> str:
    return f"{n:,} record" + ("" if n == 1 else "s")


def identity_ok(stats: Dict[str, Any]) -> bool:
    return int(num(stats.get("records_in"))) == int(num(stats.get("records_out"))) + sum(
        sum(counts(stats, k).values()) for k in ("filtered", "duplicates", "dead_letter"))
