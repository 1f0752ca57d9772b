"""Beat's periodic upkeep: re-send jobs whose message was lost, delete
finished jobs past their retention."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime, timedelta

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from app.extensions import settings
from app.models import Job, execute_counted, utcnow
from app.services.jobs.broker import RECOVERY_PRIORITY, queue_sizes, send_job
from app.services.jobs.kinds import TERMINAL, JobStatus, kind_of

log = logging.getLogger(__name__)


def recover_stuck_jobs(session: Session, *, now: datetime | None = None) -> list[str]:
    """Re-send the jobs whose message is gone, ahead of any backlog:

    - running with an expired lease: the worker died, and the broker would
      hand its message out again only after the visibility timeout;
    - queued for longer than STUCK_QUEUED_SECONDS while their queue is empty,
      so their message cannot be waiting in it. A job merely waiting behind a
      backlog is left alone: a re-send would only double the queue.

    Claiming is conditional, so a job that gets two messages still runs once."""
    now = now or utcnow()
    # After a re-send, `updated_at` holds the next one back for a lease period.
    resent_before = now - timedelta(seconds=settings.job_lease_seconds)
    lost = session.execute(
        select(Job.id, Job.type).where(
            Job.status == JobStatus.RUNNING, Job.lease_expires_at < now, Job.updated_at < resent_before
        )
    ).all()
    resent = _resend(lost) + _resend(_queued_without_a_message(session, now))
    if resent:
        # Touch the rows so the next sweep waits a full period before resending.
        session.execute(update(Job).where(Job.id.in_(resent)).values(updated_at=now))
        log.info("re-sent %d stuck jobs: %s", len(resent), ", ".join(resent))
    session.commit()
    return resent


def _queued_without_a_message(session: Session, now: datetime) -> list[tuple[str, str]]:
    queued_before = now - timedelta(seconds=settings.stuck_queued_seconds)
    stuck = session.execute(
        select(Job.id, Job.type).where(Job.status == JobStatus.QUEUED, Job.updated_at < queued_before)
    ).all()
    if not stuck:
        return []
    try:
        sizes = queue_sizes()
    except Exception as exc:
        log.warning("queue sizes unavailable, no queued job re-sent: %s", exc)
        return []
    return [(job_id, job_type) for job_id, job_type in stuck if sizes.get(kind_of(job_type).queue) == 0]


def _resend(jobs: Iterable[tuple[str, str]]) -> list[str]:
    resent = []
    for job_id, job_type in jobs:
        try:
            send_job(job_id, job_type, priority=RECOVERY_PRIORITY)
        except Exception as exc:
            log.warning("could not re-send job %s: %s", job_id, exc)
            break
        resent.append(job_id)
    return resent


def purge_expired_jobs(session: Session, *, now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - timedelta(days=settings.job_retention_days)
    deleted = execute_counted(session, delete(Job).where(Job.status.in_(sorted(TERMINAL)), Job.finished_at < cutoff))
    session.commit()
    return deleted
