"""Which records each input pipeline reads: pure Python, shared by tf.data and the NumPy loaders."""

from __future__ import annotations

from typing import Dict, List, Sequence

__all__ = ["pipeline_segments"]


def pipeline_segments(files: Sequence[str], counts: Dict[str, int], n_pipelines: int,
                      pipeline_id: int) -> List[tuple]:
    """One pipeline's ``(file, skip, take)`` segments: its contiguous ``1/P`` of the records.

    The files are laid end to end in the given order; pipeline ``k`` reads
    records ``[k N / P, (k + 1) N / P)``: pipelines differ by at most one
    record, and each reads only its own share (plus the skipped head of at
    most one file).
    """
    total = sum(counts[f] for f in files)
    lo = total * pipeline_id // n_pipelines
    hi = total * (pipeline_id + 1) // n_pipelines
    out, start = [], 0
    for f in files:
        end = start + counts[f]
        a, b = max(lo, start), min(hi, end)
        if a < b:
            out.append((f, a - start, b - a))
        start = end
    return out
