"""The load test in make bench's run: bench/locustfile.py, headless, against
the benchmark's own service, as `make load` runs it against `make run`
(LOAD_USERS users for LOAD_SECONDS). Its statistics come back from locust's
CSV files."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

# Not bench.locustfile itself: importing locust monkey-patches this process for gevent.
from bench.parameters import (
    INGEST_JOB,
    JOB_ROUTE,
    LOAD_SECONDS,
    LOAD_SPAWN_RATE,
    LOAD_USERS,
    ROOT,
    SEARCH_JOB,
    SEARCH_ROUTE,
)
from bench.timing import latency_stats

# Setup (a SciFact slice ingested for the users to search) comes before the timed run.
SETUP_ALLOWANCE_S = 900


def run_load_test(base_url: str, api_key: str, workdir: Path, web_log: Path) -> dict:
    """Locust's numbers for the search submit, the poll and whole jobs, and
    its error count, with the web's own timing of the same submits (from its
    access log); {"skipped": why} when locust could not run."""
    prefix = workdir / "load"
    log_offset = web_log.stat().st_size
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "--only-summary",
        "--users", str(LOAD_USERS), "--spawn-rate", str(LOAD_SPAWN_RATE), "--run-time", f"{LOAD_SECONDS}s",
        "--host", base_url, "--csv", str(prefix),
    ]  # fmt: skip
    try:
        ran = subprocess.run(
            command,
            env={**os.environ, "QUARRY_KEY": api_key},
            capture_output=True,
            text=True,
            timeout=LOAD_SECONDS + SETUP_ALLOWANCE_S,
        )
    except subprocess.TimeoutExpired:
        return {"skipped": f"locust did not finish within {LOAD_SECONDS + SETUP_ALLOWANCE_S} s"}
    stats_file = prefix.with_name("load_stats.csv")
    if not stats_file.exists():
        return {"skipped": f"locust exited {ran.returncode} without statistics: {ran.stderr[-500:]}"}
    with stats_file.open() as f:
        rows = {(row["Type"], row["Name"]): row for row in csv.DictReader(f)}
    summary = [line for line in ran.stdout.splitlines() if line.startswith("Load test,")]
    return {
        "users": LOAD_USERS,
        "seconds": LOAD_SECONDS,
        "submit": _stats(rows.get(("POST", SEARCH_ROUTE))),
        "submit_in_app": _submits_in_app(web_log, log_offset),
        "poll": _stats(rows.get(("GET", JOB_ROUTE))),
        "search_job": _stats(rows.get(("JOB", SEARCH_JOB))),
        "ingest_job": _stats(rows.get(("JOB", INGEST_JOB))),
        "requests_per_s": float(rows[("", "Aggregated")]["Requests/s"]),
        "errors": int(rows[("", "Aggregated")]["Failure Count"]) + sum(e["count"] for e in _exceptions(prefix)),
        "failures": _failures(prefix) + _exceptions(prefix),
        "exit_code": ran.returncode,
        "summary": summary[-1] if summary else "",
    }


def _stats(row: dict | None) -> dict | None:
    if row is None:
        return None
    return {
        "requests": int(row["Request Count"]),
        "failures": int(row["Failure Count"]),
        "p50": float(row["50%"]),
        "p95": float(row["95%"]),
        "p99": float(row["99%"]),
    }


def _submits_in_app(web_log: Path, offset: int) -> dict:
    """p50/p95 of the search submits as the app timed them (quarry.access
    `duration_ms`: from the request reaching Flask to its response), logged
    since `offset`."""
    durations = []
    with web_log.open() as f:
        f.seek(offset)
        for line in f:
            if not line.startswith("{"):
                continue
            entry = json.loads(line)
            if entry.get("logger") == "quarry.access" and entry.get("method") == "POST" and str(
                entry.get("route", "")
            ).endswith("/search"):
                durations.append(entry["duration_ms"])
    return latency_stats(durations)


def _failures(prefix: Path) -> list[dict]:
    """Each failed request or job: what, why, how often."""
    return [
        {"what": f"{row['Method']} {row['Name']}", "error": row["Error"], "count": int(row["Occurrences"])}
        for row in _rows(prefix.with_name("load_failures.csv"))
    ]


def _exceptions(prefix: Path) -> list[dict]:
    """Errors raised in the users' code (not failed requests)."""
    return [
        {"what": row["Traceback"].strip().splitlines()[-1] if row["Traceback"].strip() else "", "error": row["Message"],
         "count": int(row["Count"])}
        for row in _rows(prefix.with_name("load_exceptions.csv"))
    ]


def _rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))
