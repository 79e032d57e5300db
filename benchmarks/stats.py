"""The arithmetic of the reports: percentiles, medians with their spread, ratios. Pure
Python (no numpy, no torch) so the maths is tested on its own."""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES = (50, 95, 99)


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100) by linear interpolation between closest ranks (numpy's
    default, 'linear'); NaN for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"q must be in [0, 100], got {q}")
    if not values:
        return math.nan
    ordered = sorted(values)
    position = (len(ordered) - 1) * q / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def spread(values: Sequence[float]) -> dict[str, float | int]:
    """Median, min, max and count of repeated measurements (the headline of each figure)."""
    if not values:
        return {"median": math.nan, "min": math.nan, "max": math.nan, "n": 0}
    return {"median": median(values), "min": min(values), "max": max(values), "n": len(values)}


def distribution(values: Sequence[float]) -> dict[str, float | int]:
    """Mean, median and the tail percentiles of a latency sample."""
    summary: dict[str, float | int] = {
        "n": len(values),
        "mean": sum(values) / len(values) if values else math.nan,
    }
    summary["median"] = median(values)
    for q in PERCENTILES:
        summary[f"p{q}"] = percentile(values, q)
    summary["max"] = max(values) if values else math.nan
    return summary


def ratio(numerator: float, denominator: float) -> float:
    """numerator / denominator; NaN when either is missing or the denominator is 0."""
    if denominator == 0 or math.isnan(numerator) or math.isnan(denominator):
        return math.nan
    return numerator / denominator


def rate(count: float, seconds: float) -> float:
    return ratio(count, seconds)


def gaps(timestamps: Sequence[float]) -> list[float]:
    """Differences between consecutive timestamps (inter-token latencies)."""
    return [b - a for a, b in zip(timestamps, timestamps[1:], strict=False)]


def finite_or_none(value: float) -> float | None:
    """JSON has no NaN: missing numbers are written as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
