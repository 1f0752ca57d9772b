"""Prometheus metrics, counted in every process (gunicorn workers, Celery pool
processes) through prometheus-client's multiprocess mode: each process
writes its samples under PROMETHEUS_MULTIPROC_DIR (set in app/config.py) and
/metrics adds them up. Job counts are applied only once the transaction that
made the change commits, so a rolled-back change is never counted."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable

from prometheus_client import Counter, Histogram, values
from sqlalchemy import event
from sqlalchemy.orm import Session

import app.config  # noqa: F401  (sets PROMETHEUS_MULTIPROC_DIR's default)


def _process_identifier() -> str:
    # Sample files are named by it: the host keeps containers that share one
    # directory (docker-compose's /data) from writing each other's files.
    return f"{socket.gethostname().replace('_', '-')}-{os.getpid()}"


# Chosen here, not when prometheus-client is first imported: the `celery`
# command loads Flower's plugin, which imports it before app/config.py has
# set PROMETHEUS_MULTIPROC_DIR, and the worker's samples would stay in memory.
values.ValueClass = (
    values.MultiProcessValue(process_identifier=_process_identifier)
    if os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    else values.MutexValue
)

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

_PENDING = "quarry_metrics_pending"


def after_commit(session: Session, count: Callable[[], None]) -> None:
    """Run `count` once the session's transaction commits; drop it on rollback."""
    session.info.setdefault(_PENDING, []).append(count)


@event.listens_for(Session, "after_commit")
def _count_committed(session: Session) -> None:
    for count in session.info.pop(_PENDING, []):
        count()


@event.listens_for(Session, "after_rollback")
def _forget_rolled_back(session: Session) -> None:
    session.info.pop(_PENDING, None)
