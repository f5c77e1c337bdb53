"""Small, pure statistics for the benchmark: percentiles and latency summaries.

Kept free of I/O so the unit tests can check them without a running stack.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from typing import TypedDict


class LatencySummary(TypedDict):
    """Latency samples in milliseconds, summarised."""

    n: int
    median_ms: float
    p99_ms: float
    min_ms: float
    max_ms: float


def percentile(samples: Sequence[float], q: float) -> float:
    """The `q`-quantile (0 ≤ q ≤ 1) by linear interpolation between closest ranks.

    Interpolating (numpy's default) rather than picking the nearest rank keeps p99 of a
    few hundred samples from jumping between neighbours from run to run.
    """
    if not samples:
        raise ValueError("percentile of no samples")
    if not 0.0 <= q <= 1.0:
        raise ValueError(f"quantile must be within [0, 1], got {q}")
    ordered = sorted(samples)
    position = q * (len(ordered) - 1)
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    fraction = position - low
    return ordered[low] + (ordered[high] - ordered[low]) * fraction


def summarize_ms(seconds: Sequence[float]) -> LatencySummary:
    """Latency samples given in seconds, summarised in milliseconds."""
    ms = [s * 1000.0 for s in seconds]
    return LatencySummary(
        n=len(ms),
        median_ms=round(statistics.median(ms), 2),
        p99_ms=round(percentile(ms, 0.99), 2),
        min_ms=round(min(ms), 2),
        max_ms=round(max(ms), 2),
    )


def rate(count: int, seconds: float) -> float:
    """Items per second, 0 when no time passed (a phase that did nothing)."""
    return round(count / seconds, 1) if seconds > 0 else 0.0
