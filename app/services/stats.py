"""Percentiles of the figures the service reports about itself (pipeline
timings, webhook delays)."""

from __future__ import annotations

import math
from collections.abc import Iterable


def percentile(values: Iterable[float], percent: float, digits: int = 1) -> float | None:
    """The `percent`-th percentile, interpolated between the two nearest ranks
    (numpy's default) and rounded to `digits`; None when there are no values."""
    ordered = sorted(values)
    if not ordered:
        return None
    position = (len(ordered) - 1) * percent / 100
    low = math.floor(position)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (position - low), digits)
