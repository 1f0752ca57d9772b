"""Job lifecycle: create, enqueue, claim, checkpoint, finish, recover.

Every state change is a conditional UPDATE, so a message delivered twice, or
a job taken over from a dead worker, never runs two writers at once and never
moves a finished job. A worker holds a *lease* on a running job and renews it
at every checkpoint; when the lease runs out the worker is presumed dead and
the job may be claimed again (by the redelivered message, or by the recovery
sweep that re-sends it).
"""

from __future__ import annotations

import logging
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Callable

from kombu.exceptions import ChannelError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from app.config import settings
from app.extensions import celery, db
from app.models import Job, utcnow
from app.services.errors import JobFailure, NotFound, QuotaExceeded, ServiceUnavailable
from app.services.keys import Principal
from app.services.pagination import paginate

log = logging.getLogger(__name__)

TASK_FOR_TYPE = {
    "ingest": "quarry.ingest",
    "search": "quarry.search",
}
JOB_QUEUES = ("search", "ingest")
MAX_ATTEMPTS = 5
BROKER_RETRY_AFTER = 5
QUOTA_RETRY_AFTER = 5
OVERLOAD_RETRY_AFTER = 30


def create_job(
    session: Session,
    *,
    tenant_id: str,
    job_type: str,
    api_key_id: str | None = None,
    params: dict[str, Any],
    collection_id: str | None = None,
    collection_name: str | None = None,
    total: int = 0,
    job_id: str | None = None,
) -> Job:
    job = Job(
        id=job_id or uuid.uuid4().hex,
        tenant_id=tenant_id,
        api_key_id=api_key_id,
        type=job_type,
        status="queued",
        params=params,
        collection_id=collection_id,
        collection_name=collection_name,
        progress_total=total,
    )
    session.add(job)
    session.commit()
    return job


def enqueue(session: Session, job: Job) -> None:
    """Send the job's message (task id == job id). If the broker refuses, the
    job is marked failed at once, so no accepted-looking job never runs."""
    try:
        celery.send_task(TASK_FOR_TYPE[job.type], args=[job.id], task_id=job.id)
    except Exception as exc:  # kombu wraps broker errors in several types
        log.warning("broker refused job %s: %s", job.id, exc)
        _finish(
            session,
            job.id,
            status="failed",
            from_statuses=("queued",),
            error=("service_unavailable", "The job queue was unreachable; the job never started."),
        )
        raise ServiceUnavailable(
            "The job queue is unreachable. Nothing was started; try again shortly.",
            retry_after=BROKER_RETRY_AFTER,
        ) from exc


def admit(session: Session, principal: Principal) -> None:
    """Backpressure before a job is accepted: the key's in-flight quota, then
    the broker's queue depth. Raises instead of letting work pile up."""
    quota = settings.inflight_jobs[principal.tier]
    in_flight = session.scalar(
        select(func.count())
        .select_from(Job)
        .where(Job.api_key_id == principal.key_id, Job.status.in_(Job.ACTIVE))
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
    broker cannot say, in which case enqueue will answer for it."""
    global _depth_cache
    checked, depth = _depth_cache
    if time.monotonic() - checked < 1.0:
        return depth
    try:
        with celery.connection_for_write() as connection:
            depth = sum(_queue_size(connection, name) for name in JOB_QUEUES)
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


def submit(session: Session, principal: Principal, **kwargs: Any) -> Job:
    admit(session, principal)
    job = create_job(session, tenant_id=principal.tenant_id, api_key_id=principal.key_id, **kwargs)
    enqueue(session, job)
    return job


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    job = session.get(Job, job_id)
    if job is None or job.tenant_id != tenant_id:
        raise NotFound(f"No job with id {job_id!r}.")
    return job


def list_jobs(
    session: Session,
    tenant_id: str,
    *,
    limit: int,
    cursor: str | None = None,
    status: str | None = None,
    job_type: str | None = None,
    collection: str | None = None,
):
    query = select(Job).where(Job.tenant_id == tenant_id)
    if status:
        query = query.where(Job.status == status)
    if job_type:
        query = query.where(Job.type == job_type)
    if collection:
        query = query.where(Job.collection_name == collection)
    return paginate(session, query, Job, limit, cursor)


# --- running jobs -----------------------------------------------------------


class JobBusy(Exception):
    """Another live worker holds the job; try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"job is leased to another worker for {retry_after}s")
        self.retry_after = retry_after


class JobStopped(Exception):
    """The job was cancelled, or its lease was taken over: stop quietly."""


@dataclass
class JobContext:
    """Handed to a job handler: its parameters, and checkpoints that record
    progress, renew the lease and notice cancellation."""

    job_id: str
    owner: str
    tenant_id: str
    job_type: str
    params: dict[str, Any]
    collection_id: str | None
    lease_seconds: int

    def checkpoint(self, processed: int, total: int | None = None) -> None:
        values: dict[str, Any] = {
            "progress_processed": processed,
            "lease_expires_at": utcnow() + timedelta(seconds=self.lease_seconds),
            "updated_at": utcnow(),
        }
        if total is not None:
            values["progress_total"] = total
        with db.session_scope() as session:
            changed = session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.status == "running", Job.lease_owner == self.owner)
                .values(**values)
            ).rowcount
            session.commit()
        if not changed:
            raise JobStopped(self.job_id)


def claim(session: Session, job_id: str, owner: str, lease_seconds: int) -> Job | None:
    """Take the job for this worker. None when there is nothing to do (unknown
    or finished job); JobBusy when a live worker holds it."""
    now = utcnow()
    claimed = session.execute(
        update(Job)
        .where(
            Job.id == job_id,
            Job.attempts < MAX_ATTEMPTS,
            (Job.status == "queued")
            | ((Job.status == "running") & ((Job.lease_expires_at.is_(None)) | (Job.lease_expires_at < now))),
        )
        .values(
            status="running",
            lease_owner=owner,
            lease_expires_at=now + timedelta(seconds=lease_seconds),
            attempts=Job.attempts + 1,
            updated_at=now,
        )
    ).rowcount
    session.commit()
    job = session.get(Job, job_id)
    if job is None:
        return None
    session.refresh(job)
    if claimed:
        if job.started_at is None:
            job.started_at = now
            session.commit()
        return job
    if job.status in Job.TERMINAL:
        return None
    if job.attempts >= MAX_ATTEMPTS:
        _finish(
            session,
            job_id,
            status="failed",
            from_statuses=Job.ACTIVE,
            error=("internal_error", f"The job's worker stopped {job.attempts} times; giving up."),
        )
        return None
    remaining = (job.lease_expires_at - now).total_seconds() if job.lease_expires_at else 1
    raise JobBusy(max(1, int(remaining) + 1))


def _finish(
    session: Session,
    job_id: str,
    *,
    status: str,
    from_statuses: tuple[str, ...],
    owner: str | None = None,
    result: dict[str, Any] | None = None,
    error: tuple[str, str] | None = None,
    completed: bool = False,
) -> bool:
    now = utcnow()
    values: dict[str, Any] = {
        "status": status,
        "finished_at": now,
        "updated_at": now,
        "lease_owner": None,
        "lease_expires_at": None,
    }
    if result is not None:
        values["result"] = result
    if error is not None:
        values["error_code"], values["error_message"] = error
    if completed:  # a finished job has processed everything it had
        values["progress_processed"] = Job.progress_total
    query = update(Job).where(Job.id == job_id, Job.status.in_(from_statuses))
    if owner is not None:
        query = query.where(Job.lease_owner == owner)
    changed = session.execute(query.values(**values)).rowcount
    session.commit()
    return bool(changed)


Handler = Callable[[JobContext], dict[str, Any]]


def run(job_id: str, handler: Handler, *, timeout_errors: tuple[type[BaseException], ...] = ()) -> str:
    """Claim and run one job to a final state. Returns what happened.

    Raises JobBusy when another live worker holds the job (the task wrapper
    retries later); every other outcome is recorded on the job row.
    """
    owner = uuid.uuid4().hex
    with db.session_scope() as session:
        job = claim(session, job_id, owner, settings.job_lease_seconds)
        if job is None:
            return "skipped"
        ctx = JobContext(
            job_id=job.id,
            owner=owner,
            tenant_id=job.tenant_id,
            job_type=job.type,
            params=dict(job.params or {}),
            collection_id=job.collection_id,
            lease_seconds=settings.job_lease_seconds,
        )
    try:
        result = handler(ctx)
    except JobStopped:
        return "stopped"
    except JobFailure as exc:
        outcome, error, result = "failed", (exc.code, exc.message), None
    except timeout_errors:
        outcome, error, result = "failed", ("timeout", "The job ran past its time limit."), None
    except Exception:
        log.exception("job %s crashed", job_id)
        outcome, error, result = "failed", ("internal_error", "The job failed unexpectedly."), None
    else:
        outcome, error = "succeeded", None
    with db.session_scope() as session:
        _finish(
            session,
            job_id,
            status=outcome,
            from_statuses=("running",),
            owner=owner,
            result=result,
            error=error,
            completed=outcome == "succeeded",
        )
    return outcome


# --- housekeeping -------------------------------------------------------------


def recover_stuck_jobs(session: Session, *, now: datetime | None = None) -> list[str]:
    """Re-send jobs whose message was lost: queued too long, or running with an
    expired lease (the worker died and the broker has not redelivered yet).
    Claiming is conditional, so a job that gets two messages still runs once."""
    now = now or utcnow()
    queued_before = now - timedelta(seconds=settings.stuck_queued_seconds)
    # An expired lease means no checkpoint for a whole lease period; after a
    # re-send, `updated_at` holds the next one back for another period.
    resent_before = now - timedelta(seconds=settings.job_lease_seconds)
    stale = session.scalars(
        select(Job).where(
            ((Job.status == "queued") & (Job.updated_at < queued_before))
            | (
                (Job.status == "running")
                & (Job.lease_expires_at < now)
                & (Job.updated_at < resent_before)
            )
        )
    ).all()
    resent = []
    for job in stale:
        try:
            celery.send_task(TASK_FOR_TYPE[job.type], args=[job.id], task_id=job.id)
        except Exception as exc:
            log.warning("could not re-send job %s: %s", job.id, exc)
            break
        # Touch the row so the next sweep waits a full period before resending.
        job.updated_at = now
        resent.append(job.id)
    session.commit()
    if resent:
        log.info("re-sent %d stuck jobs: %s", len(resent), ", ".join(resent))
    return resent


def purge_expired_jobs(session: Session, *, now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - timedelta(days=settings.job_retention_days)
    deleted = session.execute(
        delete(Job).where(Job.status.in_(Job.TERMINAL), Job.finished_at < cutoff)
    ).rowcount
    session.commit()
    return deleted
