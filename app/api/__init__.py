"""HTTP adapters: one flask-smorest blueprint per resource. They validate,
call a service, and shape the answer; no domain logic lives here."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from app.api.web_extensions import response_headers
from app.config import API_PREFIX
from app.models import Job
from app.services.jobs import ACTIVE, job_to_dict, retry_after_seconds

__all__ = ["ACCEPTED_HEADERS", "API_PREFIX", "JOB_HEADERS", "accepted", "job_answer", "poll_headers"]

# The headers `accepted` and `job_answer` send, for the routes' documentation.
ACCEPTED_HEADERS = response_headers("Location", "Retry-After")
JOB_HEADERS = response_headers("Retry-After")


def accepted(job: Job) -> tuple[dict[str, Any], int, dict[str, str]]:
    """The answer to every submit: 202, the job, and where to poll it; 200
    with `Idempotent-Replayed: true` for a repeated Idempotency-Key."""
    body, _, headers = job_answer(job)
    headers = {"Location": body["links"]["self"], **headers}
    if job.replayed:
        return body, 200, {**headers, "Idempotent-Replayed": "true"}
    return body, 202, headers


def job_answer(job: Job) -> tuple[dict[str, Any], int, dict[str, str]]:
    """A job's JSON, with a Retry-After poll hint while it is queued or running."""
    return job_to_dict(job), 200, poll_headers(job.status, job.type, job.created_at)


def poll_headers(status: str, job_type: str, created_at: datetime) -> dict[str, str]:
    """Retry-After and no caching while the job can still change."""
    if status not in ACTIVE:
        return {}
    return {"Retry-After": str(retry_after_seconds(job_type, created_at)), "Cache-Control": "no-store"}
