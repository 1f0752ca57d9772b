"""Periodic upkeep: re-send jobs whose message was lost (beat and every
worker), delete finished jobs past their retention (beat)."""

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

    Every worker sweeps as well as beat, so sweeps overlap: a job is re-sent
    only by the sweep whose conditional update moved its `updated_at` from
    the value it read, which also holds the next re-send back a lease period.
    Claiming a job to run is conditional too, so a job that gets two messages
    still runs once."""
    now = now or utcnow()
    resent_before = now - timedelta(seconds=settings.job_lease_seconds)
    lost = session.execute(
        select(Job.id, Job.type, Job.updated_at).where(
            Job.status == JobStatus.RUNNING, Job.lease_expires_at < now, Job.updated_at < resent_before
        )
    ).all()
    candidates = [*lost, *_queued_without_a_message(session, now)]
    ours = [(job_id, job_type) for job_id, job_type, seen in candidates if _take(session, job_id, seen, now)]
    session.commit()
    resent = _resend(ours)
    if resent:
        log.info("re-sent %d stuck jobs: %s", len(resent), ", ".join(resent))
    return resent


def _take(session: Session, job_id: str, seen: datetime, now: datetime) -> bool:
    """Whether this sweep is the one to re-send the job (no other moved it)."""
    touched = update(Job).where(Job.id == job_id, Job.updated_at == seen).values(updated_at=now)
    return execute_counted(session, touched) == 1


def _queued_without_a_message(session: Session, now: datetime) -> list[tuple[str, str, datetime]]:
    queued_before = now - timedelta(seconds=settings.stuck_queued_seconds)
    stuck = session.execute(
        select(Job.id, Job.type, Job.updated_at).where(Job.status == JobStatus.QUEUED, Job.updated_at < queued_before)
    ).all()
    if not stuck:
        return []
    try:
        sizes = queue_sizes()
    except Exception as exc:
        log.warning("queue sizes unavailable, no queued job re-sent: %s", exc)
        return []
    return [(job_id, job_type, seen) for job_id, job_type, seen in stuck if sizes.get(kind_of(job_type).queue) == 0]


def _resend(jobs: Iterable[tuple[str, str]]) -> list[str]:
    resent = []
    for job_id, job_type in jobs:
        try:
            send_job(job_id, job_type, priority=RECOVERY_PRIORITY)
        except Exception as exc:
            # The broker is down. The rows were touched: the next sweep a lease
            # period on tries them again.
            log.warning("could not re-send job %s: %s", job_id, exc)
            break
        resent.append(job_id)
    return resent


def purge_expired_jobs(session: Session, *, now: datetime | None = None) -> int:
    cutoff = (now or utcnow()) - timedelta(days=settings.job_retention_days)
    deleted = execute_counted(session, delete(Job).where(Job.status.in_(sorted(TERMINAL)), Job.finished_at < cutoff))
    session.commit()
    return deleted
