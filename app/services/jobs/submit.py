"""The one way a job is created: `submit()`.

Admission (the key's in-flight quota, the broker's queue depth) and the job
row happen in the caller's transaction, together with whatever else the
caller added to it; the broker message is sent only after that commit, so a
worker never receives the id of a row it cannot see. Idempotency keys and
the result cache plug in here.
"""

from __future__ import annotations

import logging
import time
import uuid
from typing import Any

from kombu.exceptions import ChannelError
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from app.config import settings
from app.extensions import celery
from app.models import ApiKey, Collection, Job
from app.services.errors import QuotaExceeded, ServiceUnavailable
from app.services.jobs.kinds import ACTIVE, JobStatus, job_queues, kind_of
from app.services.jobs.transitions import transition
from app.services.keys import Principal

log = logging.getLogger(__name__)

BROKER_RETRY_AFTER = 5
QUOTA_RETRY_AFTER = 5
OVERLOAD_RETRY_AFTER = 30


def submit(
    session: Session,
    principal: Principal,
    job_type: str,
    *,
    params: dict[str, Any],
    collection: Collection | None = None,
    total: int = 0,
    job_id: str | None = None,
) -> Job:
    """Admit, write the job row, commit the caller's transaction, then send
    the message. Raises QuotaExceeded or ServiceUnavailable instead of
    accepting work that cannot run."""
    admit(session, principal)
    job = Job(
        id=job_id or uuid.uuid4().hex,
        tenant_id=principal.tenant_id,
        api_key_id=principal.key_id,
        type=job_type,
        status=JobStatus.QUEUED,
        params=params,
        collection_id=collection.id if collection else None,
        collection_name=collection.name if collection else None,
        progress_total=total,
    )
    session.add(job)
    session.commit()
    send(session, job)
    return job


def send(session: Session, job: Job) -> None:
    """Send the job's message (task id == job id). If the broker refuses, the
    job is failed at once, so no accepted-looking job silently never runs."""
    try:
        dispatch(job.id, job.type)
    except Exception as exc:  # kombu wraps broker errors in several types
        log.warning("broker refused job %s: %s", job.id, exc)
        transition(
            session,
            job.id,
            JobStatus.FAILED,
            only_from=[JobStatus.QUEUED],
            error_code="service_unavailable",
            error_message="The job queue was unreachable; the job never started.",
        )
        session.commit()
        session.refresh(job)
        raise ServiceUnavailable(
            "The job queue is unreachable. Nothing was started; try again shortly.",
            retry_after=BROKER_RETRY_AFTER,
        ) from exc


def dispatch(job_id: str, job_type: str) -> None:
    """Put a job's message on its kind's queue (a first send or a re-send)."""
    kind = kind_of(job_type)
    celery.send_task(kind.task, args=[job_id], task_id=job_id, queue=kind.queue)


def admit(session: Session, principal: Principal) -> None:
    """Backpressure before a job is accepted: the key's in-flight quota, then
    the broker's queue depth. Raises instead of letting work pile up."""
    quota = settings.inflight_jobs[principal.tier]
    # Count-then-insert is atomic per key: the key's row stays locked until
    # the caller commits the new job (PostgreSQL); SQLite's write transaction
    # (BEGIN IMMEDIATE) already admits one submit at a time.
    session.execute(select(ApiKey.id).where(ApiKey.id == principal.key_id).with_for_update())
    in_flight = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.api_key_id == principal.key_id, Job.status.in_(sorted(ACTIVE)))
    )
    if in_flight >= quota:
        raise QuotaExceeded(
            f"This key has {in_flight} jobs queued or running; the {principal.tier} tier "
            f"allows {quota} at once. Wait for some to finish.",
            retry_after=QUOTA_RETRY_AFTER,
        )
    depth = queue_depth()
    if depth is not None and depth >= settings.queue_depth_limit:
        raise ServiceUnavailable(
            "The job queues are full; try again later.", retry_after=OVERLOAD_RETRY_AFTER
        )


_depth_cache: tuple[float, int | None] = (0.0, None)


def queue_depth() -> int | None:
    """Messages waiting in the job queues (cached for a second); None when the
    broker cannot say, in which case send() will answer for it."""
    global _depth_cache
    checked, depth = _depth_cache
    if time.monotonic() - checked < 1.0:
        return depth
    try:
        with celery.connection_for_write() as connection:
            depth = sum(_queue_size(connection, name) for name in job_queues())
    except Exception as exc:
        log.warning("queue depth unavailable: %s", exc)
        depth = None
    _depth_cache = (time.monotonic(), depth)
    return depth


def _queue_size(connection, name: str) -> int:
    try:
        return connection.default_channel.queue_declare(queue=name, passive=True).message_count
    except ChannelError:  # never declared yet, so nothing waits in it
        return 0
