"""Summaries of measured durations, and the job row's timestamps as seconds."""

from __future__ import annotations

import datetime as dt

import numpy as np


def latency_stats(values_ms: list[float]) -> dict:
    """Count, mean, p50/p95/p99, min and max of durations in milliseconds."""
    if not values_ms:
        return {"n": 0}
    a = np.asarray(values_ms, dtype=float)
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "min": float(a.min()),
        "max": float(a.max()),
    }


def epoch_seconds(timestamp: str) -> float:
    """A job row's ISO 8601 timestamp as seconds since the epoch, comparable
    with time.time() on the same machine."""
    return dt.datetime.fromisoformat(timestamp.replace("Z", "+00:00")).timestamp()
