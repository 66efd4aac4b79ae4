"""Medians, spreads and percentiles: pure, no dependencies."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any


def percentile(values: Sequence[float], q: float) -> float:
    """The q-th percentile (0..100), linear between closest ranks."""
    if not values:
        raise ValueError("percentile of no values")
    ordered = sorted(values)
    if len(ordered) == 1:
        return float(ordered[0])
    rank = (len(ordered) - 1) * q / 100.0
    low, high = math.floor(rank), math.ceil(rank)
    return float(ordered[low] + (ordered[high] - ordered[low]) * (rank - low))


def median(values: Sequence[float]) -> float:
    return percentile(values, 50)


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median and spread of repeated measurements (spread = max - min)."""
    if not values:
        return {"runs": 0, "median": None, "min": None, "max": None, "spread": None,
                "values": []}
    return {"runs": len(values), "median": median(values), "min": float(min(values)),
            "max": float(max(values)), "spread": float(max(values) - min(values)),
            "values": [float(v) for v in values]}


def distribution(values: Sequence[float]) -> dict[str, Any]:
    """p50/p90/p99/max of a latency sample."""
    if not values:
        return {"count": 0}
    return {"count": len(values), "p50": percentile(values, 50), "p90": percentile(values, 90),
            "p99": percentile(values, 99), "max": float(max(values)),
            "min": float(min(values))}


def ratios(numerators: Sequence[float], denominators: Sequence[float]) -> list[float]:
    """Pairwise ratios of measurements taken in the same repetition."""
    return [n / d for n, d in zip(numerators, denominators, strict=False) if d]
