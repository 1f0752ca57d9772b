"""Prometheus metrics, counted in every process (gunicorn workers, Celery pool
processes) through prometheus-client's multiprocess mode: each process
writes its samples under the directory configure() names (METRICS_DIR of the
settings, bound by app/runtime.py) and /metrics adds them up. Job counts are
queued with after_commit(), so a rolled-back change is never counted."""

from __future__ import annotations

import os
import socket
from pathlib import Path

from prometheus_client import Counter, Histogram, values


def _process_identifier() -> str:
    # Sample files are named by it: the host keeps containers that share one
    # directory (docker-compose's /data) from writing each other's files.
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


def configure(directory: Path) -> None:
    """Write this process's samples under `directory`, where /metrics reads
    every process's. Chosen here, not when prometheus-client is first
    imported: the `celery` command loads Flower's plugin, which imports it
    before any settings are read. Samples are made per label set on first
    use, so this runs before the process counts anything."""
    directory.mkdir(parents=True, exist_ok=True)
    # prometheus-client's multiprocess mode reads the directory from here.
    os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(directory)
    values.ValueClass = values.MultiProcessValue(process_identifier=_process_identifier)


_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
_JOB_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)

HTTP_REQUESTS = Counter("quarry_http_requests_total", "HTTP requests answered", ["route", "method", "status"])
HTTP_LATENCY = Histogram(
    "quarry_http_request_duration_seconds",
    "Time to answer an HTTP request",
    ["route", "method"],
    buckets=_LATENCY_BUCKETS,
)
JOBS_SUBMITTED = Counter("quarry_jobs_submitted_total", "Jobs accepted", ["type"])
JOBS_STARTED = Counter("quarry_jobs_started_total", "Jobs a worker started (a retry counts again)", ["type"])
JOBS_FINISHED = Counter("quarry_jobs_finished_total", "Jobs that reached a final status", ["type", "outcome"])
JOB_QUEUE_WAIT = Histogram(
    "quarry_job_queue_wait_seconds", "From submit to a worker starting the job", ["type"], buckets=_JOB_BUCKETS
)
JOB_RUN_TIME = Histogram(
    "quarry_job_run_seconds", "From a worker starting the job to its final status", ["type"], buckets=_JOB_BUCKETS
)
REQUESTS_REFUSED = Counter(
    "quarry_requests_refused_total", "Requests refused by a rate limit or the in-flight quota", ["code"]
)
WEBHOOK_DELIVERIES = Counter("quarry_webhook_delivery_attempts_total", "Webhook delivery attempts", ["outcome"])
JOB_BATCH_SIZE = Histogram(
    "quarry_job_batch_size",
    "Jobs a worker ran together as one micro-batch",
    ["type"],
    buckets=(1, 2, 4, 8, 16, 32, 64, 128),
)
SEARCH_CACHE = Counter("quarry_search_cache_lookups_total", "Search result cache lookups", ["result"])
