"""The one place a job row becomes JSON: what a poll returns, and what a
worker puts in a webhook, byte for byte the same."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

from app.config import API_PREFIX
from app.models import Job
from app.services.jobs import poll_hints
from app.services.jobs.kinds import ACTIVE, JobStatus


def job_to_dict(job: Job) -> dict[str, Any]:
    active = job.status in ACTIVE
    body: dict[str, Any] = {
        "id": job.id,
        "type": job.type,
        "status": job.status,
        "collection": job.collection_name,
        "progress": progress(job),
        "result": job.result,
        "error": {"code": job.error_code, "message": job.error_message} if job.error_code else None,
        "attempts": job.attempts,
        "cancel_requested": job.cancel_requested_at is not None,
        "created_at": _timestamp(job.created_at),
        "started_at": _timestamp(job.started_at),
        "finished_at": _timestamp(job.finished_at),
        "links": {"self": f"{API_PREFIX}/jobs/{job.id}"},
    }
    if active:
        body["poll_after_ms"] = poll_after_ms(job)
    return body


def final_json(job: Job) -> str:
    """A finished job's JSON as text, as every later poll answers it."""
    return json.dumps(job_to_dict(job), separators=(",", ":"))


def progress(job: Job) -> dict[str, Any]:
    total = job.progress_total or 0
    processed = job.progress_processed or 0
    if total:
        processed = min(processed, total)
        percent = round(100.0 * processed / total, 1)
    else:
        percent = 100.0 if job.status == JobStatus.SUCCEEDED else 0.0
    return {"processed": processed, "total": total, "percent": percent}


def poll_after_ms(job: Job) -> int:
    return poll_hints.poll_after_ms(job.type, job.created_at)


def next_poll_ms(status: str, job_type: str, created_at: datetime) -> int | None:
    """The poll hint of a job in this state; None once it is final (it never changes again)."""
    return poll_hints.poll_after_ms(job_type, created_at) if status in ACTIVE else None


def retry_after_seconds(job_type: str, created_at: datetime) -> int:
    """The same hint in whole seconds, for the Retry-After header (at least 1)."""
    return max(1, -(-poll_hints.poll_after_ms(job_type, created_at) // 1000))


def _timestamp(moment: datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None
