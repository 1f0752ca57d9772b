"""Reading jobs for their tenant, and cancelling one."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.models import Job, is_row_id, utcnow
from app.services.errors import Conflict, NotFound
from app.services.jobs.kinds import TERMINAL, JobStatus
from app.services.jobs.runner import finish
from app.services.jobs.transitions import transition
from app.services.pagination import paginate


def get_job(session: Session, tenant_id: str, job_id: str) -> Job:
    job = session.get(Job, job_id) if is_row_id(job_id) else None
    if job is None or job.tenant_id != tenant_id:
        raise NotFound(f"No job with id {job_id!r}.")
    return job


@dataclass(frozen=True)
class JobVersion:
    """What a conditional poll needs to know about a job, without the job."""

    tag: str
    status: str
    type: str
    created_at: datetime  # for the poll hint, which depends on the job's age


def job_version(session: Session, tenant_id: str, job_id: str) -> JobVersion:
    """The job's version, read from four columns of its row: a poll whose
    client already holds this version costs no more than that."""
    row = (
        session.execute(
            select(Job.updated_at, Job.status, Job.type, Job.created_at).where(
                Job.id == job_id, Job.tenant_id == tenant_id
            )
        ).first()
        if is_row_id(job_id)
        else None
    )
    if row is None:
        raise NotFound(f"No job with id {job_id!r}.")
    return JobVersion(_tag(job_id, row.updated_at, row.status), row.status, row.type, row.created_at)


def version_of(job: Job) -> JobVersion:
    return JobVersion(_tag(job.id, job.updated_at, job.status), job.status, job.type, job.created_at)


def _tag(job_id: str, updated_at: datetime, status: str) -> str:
    # Every change to a job's JSON sets updated_at (transition(), checkpoints,
    # cancel requests, recovery); the status is in too, belt and braces.
    return hashlib.sha1(f"{job_id}|{updated_at.isoformat()}|{status}".encode()).hexdigest()


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


def cancel_job(session: Session, tenant_id: str, job_id: str) -> Job:
    """A queued job is cancelled at once and never runs, and so is a job
    following another (no worker holds it); a running one is asked to stop,
    which its worker does at its next checkpoint. A finished job cannot be
    cancelled (Conflict)."""
    job = get_job(session, tenant_id, job_id)
    cancelled = transition(
        session,
        job.id,
        JobStatus.CANCELLED,
        where=((Job.status == JobStatus.QUEUED) | Job.follows_job_id.is_not(None),),
    )
    if not cancelled:
        now = utcnow()
        session.execute(
            update(Job)
            .where(Job.id == job.id, Job.status == JobStatus.RUNNING, Job.cancel_requested_at.is_(None))
            .values(cancel_requested_at=now, updated_at=now)
        )
    session.commit()
    if cancelled:  # it never ran, and never will
        # Before this session begins another transaction: on SQLite the
        # hook's own write would wait for that one's lock.
        finish(job.type, job.id)
    session.refresh(job)
    if job.status in TERMINAL and not cancelled:
        raise Conflict(f"Job {job.id} is already {job.status}; only a queued or running job can be cancelled.")
    return job
