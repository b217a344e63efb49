"""Percentiles and medians of measured samples, one definition for every report.

A percentile here is the sample at rank floor(q * n) of the sorted samples (the largest
for q near 1): no interpolation, so every figure reported is a latency some message
really had.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence


def at_rank(ordered: Sequence[float], q: float) -> float:
    """The `q` percentile (0 <= q <= 1) of samples already sorted ascending."""
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def percentiles(
    samples: Iterable[float], qs: Sequence[float], scale: float = 1.0
) -> dict[str, float] | None:
    """{"n", "p50", ..., "max"} for the percentiles `qs` (0.5 -> "p50"), each sample
    divided by `scale` (1e6: nanoseconds to milliseconds); None without samples."""
    ordered = sorted(samples)
    if not ordered:
        return None
    found: dict[str, float] = {"n": len(ordered)}
    for q in qs:
        found[f"p{round(q * 100)}"] = at_rank(ordered, q) / scale
    found["max"] = ordered[-1] / scale
    return found


def summary(values: Iterable[float | None]) -> dict[str, float] | None:
    """Median, min and max of repeated measurements (None ones skipped); None if none."""
    present = [v for v in values if v is not None]
    if not present:
        return None
    return {"median": statistics.median(present), "min": min(present), "max": max(present)}
