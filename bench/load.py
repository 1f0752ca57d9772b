"""The load test in the `all` suite: bench/locustfile.py, headless, against
the suite's own service, as `make load` runs it against `make run`. Its
figures come back from locust's CSV files, and the submits' own durations
from the web's access log."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
from pathlib import Path

# Not bench.locustfile itself: importing locust monkey-patches this process for gevent.
from bench.measure import ROOT, latency_stats

USERS, SPAWN_RATE, SECONDS = 64, 16, 60
# The locustfile ingests a SciFact slice before the timed run starts.
SETUP_ALLOWANCE_S = 900
# Locust's names for what bench/locustfile.py times: requests by route, and whole jobs.
SEARCH_ROUTE, INGEST_ROUTE = "/api/v1/collections/[name]/search", "/api/v1/collections/[name]/documents"
JOB_ROUTE, JOB_LIST = "/api/v1/jobs/[id]", "/api/v1/jobs?limit=20"
SEARCH_JOB, CACHED_SEARCH_JOB = "search job (submit→result)", "search job, cached (submit→result)"
# The same jobs as the service timed them (created_at → finished_at): what the
# client's own pace (its polls, its process's load) adds is left out.
SEARCH_JOB_IN_SERVICE = "search job in the service (created→finished)"
INGEST_JOB = "ingest job (submit→result)"
ROWS = {"submit": ("POST", SEARCH_ROUTE), "poll": ("GET", JOB_ROUTE), "search_job": ("JOB", SEARCH_JOB),
        "search_job_in_service": ("JOB", SEARCH_JOB_IN_SERVICE),
        "ingest_job": ("JOB", INGEST_JOB)}  # fmt: skip
# The naive clients' rows (bench/locustfile.py): their failures are the 429s they earn.
NAIVE_SUBMIT, NAIVE_POLL = f"naive: {SEARCH_ROUTE}", f"naive: {JOB_ROUTE}"
NAIVE_CONDITIONAL_POLL = f"naive, conditional: {JOB_ROUTE}"
NAIVE_ROWS = {"naive_submit": ("POST", NAIVE_SUBMIT), "naive_poll": ("GET", NAIVE_POLL),
              "naive_conditional_poll": ("GET", NAIVE_CONDITIONAL_POLL)}  # fmt: skip
NAIVE_USERS = ["NaivePoller", "ConditionalPoller", "QuotaBuster"]


def run(base_url: str, api_key: str, workdir: Path, seconds: int = SECONDS, naive: bool = False) -> dict:
    """Locust's figures per row, its error count, and the app's own timing of
    the submits; with `naive`, the naive clients run beside the users."""
    prefix, web_log = workdir / "load", workdir / "web.log"
    log_offset = web_log.stat().st_size
    command = [
        sys.executable, "-m", "locust", "-f", str(ROOT / "bench" / "locustfile.py"), "--headless", "--only-summary",
        "--users", str(USERS), "--spawn-rate", str(SPAWN_RATE), "--run-time", f"{seconds}s",
        "--host", base_url, "--csv", str(prefix), "QuarryUser", *(NAIVE_USERS if naive else []),
    ]  # fmt: skip
    env = {**os.environ, "QUARRY_KEY": api_key}
    try:
        ran = subprocess.run(command, env=env, capture_output=True, text=True, timeout=seconds + SETUP_ALLOWANCE_S)
    except subprocess.TimeoutExpired:
        return {"skipped": f"locust did not finish within {seconds + SETUP_ALLOWANCE_S} s"}
    rows = {(row["Type"], row["Name"]): row for row in csv_rows(workdir / "load_stats.csv")}
    if not rows:
        return {"skipped": f"locust exited {ran.returncode} without statistics: {ran.stderr[-500:]}"}
    failures = [
        f"{r['Method']} {r['Name']}: {r['Error']} (×{r['Occurrences']})"
        for r in csv_rows(workdir / "load_failures.csv")
    ]
    exceptions = [f"{r['Message']} (×{r['Count']})" for r in csv_rows(workdir / "load_exceptions.csv")]
    total = rows[("", "Aggregated")]
    naive_failures = sum(int(rows[key]["Failure Count"]) for key in NAIVE_ROWS.values() if key in rows)
    return {
        "users": USERS, "seconds": seconds, "exit_code": ran.returncode,
        "requests_per_s": float(total["Requests/s"]),
        "errors": int(total["Failure Count"]) - naive_failures + sum(int(r["Count"]) for r in csv_rows(workdir / "load_exceptions.csv")),
        "failures": failures + exceptions,
        "submit_in_app": submits_in_app(web_log, log_offset),
        **{name: stats(rows.get(key)) for name, key in (ROWS | NAIVE_ROWS if naive else ROWS).items()},
    }  # fmt: skip


def stats(row: dict | None) -> dict:
    if row is None:
        return {"n": 0}
    return {"n": int(row["Request Count"]), "failures": int(row["Failure Count"]),
            **{p: float(row[f"{p[1:]}%"]) for p in ("p50", "p95", "p99")}}  # fmt: skip


def submits_in_app(web_log: Path, offset: int) -> dict:
    """The search submits as the app timed them (quarry.access `duration_ms`), logged since `offset`."""
    durations = []
    with web_log.open() as f:
        f.seek(offset)
        for line in f:
            entry = json.loads(line) if line.startswith("{") else {}
            if entry.get("logger") == "quarry.access" and entry.get("method") == "POST":
                if str(entry.get("route", "")).endswith("/search"):
                    durations.append(entry["duration_ms"])
    return latency_stats(durations)


def csv_rows(path: Path) -> list[dict]:
    if not path.exists():
        return []
    with path.open() as f:
        return list(csv.DictReader(f))
