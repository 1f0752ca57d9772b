"""The one way a job is created: `submit()`.

Admission (the key's in-flight quota, the broker's queue depth) and the job
row happen in the caller's transaction, together with whatever else the
caller added to it; the broker message is sent only after that commit, so a
worker never receives the id of a row it cannot see. Idempotency keys and
the result cache plug in here.
"""

from __future__ import annotations

import logging
import uuid
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app import metrics
from app.extensions import after_commit, settings
from app.models import ApiKey, Collection, Job
from app.services.errors import QuotaExceeded, ServiceUnavailable
from app.services.jobs.broker import BULK_PRIORITY, NORMAL_PRIORITY, queue_depth, send_job
from app.services.jobs.idempotency import Idempotency, remember, replay
from app.services.jobs.kinds import ACTIVE, JobStatus
from app.services.jobs.transitions import transition
from app.services.keys import Principal
from app.services.webhooks.endpoints import check_url

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
    idempotency: Idempotency | None = None,
    answered: dict[str, Any] | None = None,
) -> Job:
    """Admit, write the job row, commit the caller's transaction, then send
    the message. Raises QuotaExceeded or ServiceUnavailable instead of
    accepting work that cannot run. With `idempotency`, a repeated request
    returns the job the first one created (its `replayed` set) instead. With
    `answered` (a cached result), the job is born succeeded and never sent."""
    if idempotency is not None and (earlier := replay(session, principal, idempotency)) is not None:
        return earlier
    if params.get("callback_url"):
        check_url(params["callback_url"], "callback_url")
    priority = NORMAL_PRIORITY
    if answered is None:  # an answered job takes no worker and no in-flight slot
        priority = admit(session, principal)
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
        priority=priority,
    )
    session.add(job)
    after_commit(session, metrics.JOBS_SUBMITTED.labels(job_type).inc)
    if answered is not None:
        _finish_at_once(session, job, answered)
    if idempotency is not None:
        remember(session, principal, idempotency, job)
    try:
        session.commit()
    except IntegrityError:
        # A concurrent request with the same key committed first: answer with its job.
        session.rollback()
        earlier = replay(session, principal, idempotency) if idempotency is not None else None
        if earlier is None:
            raise
        return earlier
    if answered is None:
        send(session, job)
    else:
        session.refresh(job)
    return job


def _finish_at_once(session: Session, job: Job, result: dict[str, Any]) -> None:
    """Queued, running and succeeded in one transaction: the same path, and
    the same events, as a job a worker ran."""
    session.flush()
    transition(session, job.id, JobStatus.RUNNING)
    transition(session, job.id, JobStatus.SUCCEEDED, result=result, progress_processed=job.progress_total)


def send(session: Session, job: Job) -> None:
    """Send the job's message (task id == job id). If the broker refuses, the
    job is failed at once, so no accepted-looking job silently never runs."""
    try:
        send_job(job.id, job.type, priority=job.priority, collection=job.collection_name)
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


def admit(session: Session, principal: Principal) -> int:
    """Backpressure before a job is accepted: the broker's queue depth, then
    the key's in-flight quota. Raises instead of letting work pile up;
    returns the priority of the job's message: BULK_PRIORITY once the key
    has its fair share of jobs in flight, so that other keys' jobs overtake
    what it queues beyond that."""
    # The broker first: it is not asked while the key's row is locked.
    depth = queue_depth()
    if depth is not None and depth >= settings.queue_depth_limit:
        raise ServiceUnavailable("The job queues are full; try again later.", retry_after=OVERLOAD_RETRY_AFTER)
    quota = settings.inflight_jobs[principal.tier]
    # Count-then-insert is atomic per key: the key's row stays locked until
    # the caller commits the new job (PostgreSQL); SQLite's write transaction
    # (BEGIN IMMEDIATE) already admits one submit at a time.
    session.execute(select(ApiKey.id).where(ApiKey.id == principal.key_id).with_for_update())
    in_flight = session.execute(
        select(func.count()).select_from(Job).where(Job.api_key_id == principal.key_id, Job.status.in_(sorted(ACTIVE)))
    ).scalar_one()
    if in_flight >= quota:
        raise QuotaExceeded(
            f"This key has {in_flight} jobs queued or running; the {principal.tier} tier "
            f"allows {quota} at once. Wait for some to finish.",
            retry_after=QUOTA_RETRY_AFTER,
        )
    return NORMAL_PRIORITY if in_flight < settings.fair_share_jobs else BULK_PRIORITY
