"""What every suite shares: where results go, the fixed settings of a run,
and the results file itself (one JSON object, one key per suite, each
stamped with when, where and on what code it was measured)."""

from __future__ import annotations

import datetime as dt
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

from app.config import Settings
from bench.measure import ROOT

# The settings the service runs with here, for what the suites do in process
# (the baseline's chunking and model, the hnsw parameters).
settings = Settings.from_env()

RESULTS = ROOT / "docs" / "benchmarks.json"
BENCHMARKS_MD = ROOT / "docs" / "benchmarks.md"
QUALITY_MD = ROOT / "docs" / "quality.md"
DATASET = ROOT.parent / "shared" / "datasets" / "scifact"

TOP_K = 10
# Celery pool processes of the one worker: one per core of a 2-core machine.
WORKER_CONCURRENCY = 2
# A search not final after this long counts as failed.
SEARCH_TIMEOUT = 120.0
# The top tier, with its limits raised, so the rate limiter and the in-flight
# quota never refuse a benchmark: it measures the service, not the limits.
BENCH_TIER = "enterprise"
BENCH_LIMITS = {"RATE_LIMIT_ENTERPRISE": "1000000/minute", "INFLIGHT_JOBS_ENTERPRISE": "100000"}

Log = Callable[[str], None]


def logger() -> Log:
    """print with the seconds since the run began."""
    started = time.perf_counter()
    return lambda message: print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)


def isolate_from_local_service() -> None:
    """The processes a suite starts inherit this environment: none may point
    them at a developer's Redis, broker or database."""
    for name in ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL", "TEST_DATABASE_URL"):
        os.environ.pop(name, None)


def load_results(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save_results(path: Path, suite: str, figures: dict, options: dict, machine: dict, started: float) -> None:
    """Replace `suite`'s entry in the results file, keeping the other suites'.
    `machine`: machine_info() taken when the run began."""
    results = load_results(path)
    results[suite] = {
        "measured_at": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}",
        "took_s": time.time() - started,
        "options": options,
        "machine": machine,
        **figures,
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(results, indent=1) + "\n")
