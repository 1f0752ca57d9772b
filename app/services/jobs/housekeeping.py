"""Beat's periodic upkeep: re-send jobs whose message was lost, delete
finished jobs past their retention."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.config import settings
from app.models import Job, utcnow
from app.services.jobs.kinds import TERMINAL, JobStatus
from app.services.jobs.submit import dispatch

log = logging.getLogger(__name__)


def recover_stuck_jobs(session: Session, *, now: datetime | None = None) -> list[str]:
    """Re-send jobs whose message was lost: queued too long, or running with an
    expired lease (the worker died and the broker has not redelivered yet).
    Claiming is conditional, so a job that gets two messages still runs once."""
    now = now or utcnow()
    queued_before = now - timedelta(seconds=settings.stuck_queued_seconds)
    # An expired lease means no checkpoint for a whole lease period; after a
    # re-send, `updated_at` holds the next one back for another period.
    resent_before = now - timedelta(seconds=settings.job_lease_seconds)
    stale = session.execute(
        select(Job.id, Job.type).where(
            ((Job.status == JobStatus.QUEUED) & (Job.updated_at < queued_before))
            | (
                (Job.status == JobStatus.RUNNING)
                & (Job.lease_expires_at < now)
                & (Job.updated_at < resent_before)
            )
        )
    ).all()
    resent = []
    for job_id, job_type in stale:
        try:
            dispatch(job_id, job_type)
        except Exception as exc:
            log.warning("could not re-send job %s: %s", job_id, exc)
            break
        resent.append(job_id)
    if resent:
        # Touch the rows so the next sweep waits a full period before resending.
        session.execute(update(Job).where(Job.id.in_(resent)).values(updated_at=now))
        log.info("re-sent %d stuck jobs: %s", len(resent), ", ".join(resent))
    session.commit()
    return resent


def purge_expired_jobs(session: Session, *, now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - timedelta(days=settings.job_retention_days)
    deleted = session.execute(
        delete(Job).where(Job.status.in_(sorted(TERMINAL)), Job.finished_at < cutoff)
    ).rowcount
    session.commit()
    return deleted
