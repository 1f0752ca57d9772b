"""HTTP adapters: one flask-smorest blueprint per resource. They validate,
call a service, and shape the answer; no domain logic lives here."""

from __future__ import annotations

from flask import g

from app.models import Job

API_PREFIX = "/api/v1"


def accepted(job: Job) -> tuple[Job, int, dict]:
    """The answer to every submit: 202, the job, and where to poll it."""
    return job, 202, {"Location": f"{API_PREFIX}/jobs/{job.id}", "Retry-After": retry_after(job)}


def retry_after(job: Job) -> str:
    """Seconds until a poll is worth making; kept through the rate limiter,
    which otherwise writes its own window reset into Retry-After."""
    g.retry_after = "1" if job.type == "search" else "2"
    return g.retry_after
