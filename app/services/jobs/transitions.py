"""The one way a job's status changes: `transition()`.

Every change is a conditional UPDATE (`… WHERE status IN (allowed sources)`),
so a message delivered twice, a cancel racing a finish, or a worker whose
lease was taken over can never move a job twice or move a finished job. It
runs in the caller's transaction and never commits: what a state change
causes (webhook outbox rows, metrics, the moves of the jobs following
this one) is written here, in the same transaction, so it happens exactly
when the change does.

A guard (install_status_guard, installed on the sessions of app/runtime.py)
makes any other way of setting `jobs.status` an error: a bulk UPDATE without
the transition marker, or an ORM attribute change at flush.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from typing import Any

from sqlalchemy import ClauseElement, Row, event, func, literal, select, update
from sqlalchemy.orm import ORMExecuteState, Session, sessionmaker
from sqlalchemy.orm.attributes import set_committed_value

from app import metrics
from app.extensions import after_commit
from app.models import Job, UTCDateTime, utcnow
from app.services.jobs import poll_hints
from app.services.jobs.broker import RECOVERY_PRIORITY, send_job
from app.services.jobs.kinds import JobStatus
from app.services.jobs.serialize import final_json
from app.services.webhooks.events import record_job_events

# Which statuses each status may be reached from. RUNNING → RUNNING is a
# lease takeover: a new worker claims a job whose worker died.
ALLOWED_FROM: dict[JobStatus, frozenset[JobStatus]] = {
    JobStatus.QUEUED: frozenset(),
    JobStatus.RUNNING: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.SUCCEEDED: frozenset({JobStatus.RUNNING}),
    JobStatus.FAILED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
    JobStatus.CANCELLED: frozenset({JobStatus.QUEUED, JobStatus.RUNNING}),
}

_MARK = "quarry_job_transition"

log = logging.getLogger(__name__)


class StatusChangeOutsideTransition(RuntimeError):
    """A job's status was set without going through transition()."""


def transition(
    session: Session,
    job_id: str,
    to: JobStatus,
    *,
    only_from: Iterable[JobStatus] | None = None,
    held_by: str | None = None,
    where: Iterable[Any] = (),
    **values: Any,
) -> Job | None:
    """Move the job to `to` if it is in an allowed status (narrowed by
    `only_from`), leased to `held_by` when given, and matches `where`.
    Sets the timestamps that go with the move plus `values`. Returns the
    moved job as it now is, None when it did not move. Does not commit."""
    sources = ALLOWED_FROM[to] if only_from is None else ALLOWED_FROM[to] & set(only_from)
    if not sources:
        raise ValueError(f"no job may move to {to} from {sorted(only_from or ())}")
    now = utcnow()
    changes: dict[str, Any] = {"status": to, "updated_at": now}
    if to is JobStatus.RUNNING:
        changes["started_at"] = func.coalesce(Job.started_at, literal(now, UTCDateTime()))
    if to.is_terminal:
        changes.update(finished_at=now, lease_owner=None, lease_expires_at=None)
    changes.update(values)
    statement = update(Job).where(Job.id == job_id, Job.status.in_(sorted(sources)), *where)
    if held_by is not None:
        statement = statement.where(Job.lease_owner == held_by)
    # RETURNING hands back the moved row, so what follows (counters, webhook
    # events, the claimer) needs no second read of it.
    moved = session.scalars(
        statement.values(**changes)
        .returning(Job)
        .execution_options(**{_MARK: True, "synchronize_session": False, "populate_existing": True})
    ).first()
    if moved is None:
        return None
    if to is JobStatus.RUNNING or to.is_terminal:
        _count(session, moved, to, now)
    if to.is_terminal:  # the job's final JSON and events, in the same transaction
        _keep_final_json(session, moved)
        final_progress = ["job.progress"] if to is JobStatus.SUCCEEDED else []  # the final 100 %
        record_job_events(session, moved, [*final_progress, f"job.{to}"])
        _settle_followers(session, moved, to)
    return moved


def _keep_final_json(session: Session, job: Job) -> None:
    rendered = final_json(job)
    # updated_at as the move left it: the job's version (its ETag) is the final one.
    session.execute(
        update(Job)
        .where(Job.id == job.id)
        .values(final_json=rendered, updated_at=job.updated_at)
        .execution_options(synchronize_session=False)
    )
    set_committed_value(job, "final_json", rendered)  # as stored: nothing left to flush


def _settle_followers(session: Session, leader: Job, to: JobStatus) -> None:
    """The jobs following this one (following.py) move with it, in this
    transaction: succeeded with its answer, each through transition(), or,
    when it did not succeed, sent to run on their own (the leader's failure
    or cancel is not theirs)."""
    if to is not JobStatus.SUCCEEDED:
        _run_again(session, leader.id)
        return
    following = Job.follows_job_id == leader.id
    for follower_id in session.scalars(select(Job.id).where(following, Job.status == JobStatus.RUNNING)).all():
        transition(
            session,
            follower_id,
            JobStatus.SUCCEEDED,
            where=(following,),
            # Only the job that computed an answer reads `cached: false`.
            result={**(leader.result or {}), "cached": True},
            progress_processed=Job.progress_total,
        )


def _run_again(session: Session, leader_id: str) -> None:
    """End the followers' leases, so they may be claimed, and send their
    messages once this commits; should a send fail, the expired lease has
    the recovery sweep re-send them."""
    now = utcnow()
    freed = session.execute(
        update(Job)
        .where(Job.follows_job_id == leader_id, Job.status == JobStatus.RUNNING)
        .values(follows_job_id=None, lease_owner=None, lease_expires_at=now, updated_at=now)
        .returning(Job.id, Job.type)
        .execution_options(synchronize_session=False)
    ).all()
    if freed:
        after_commit(session, lambda: _send_again(freed))


def _send_again(jobs: Sequence[Row]) -> None:
    for job_id, job_type in jobs:
        try:
            send_job(job_id, job_type, priority=RECOVERY_PRIORITY)
        except Exception as exc:  # kombu wraps broker errors in several types
            log.warning("could not send job %s again; the recovery sweep will: %s", job_id, exc)


def _count(session: Session, job: Job, to: JobStatus, now) -> None:
    """The job counters and timings, applied when this transaction commits."""
    job_type, created, started, ran_by_worker = job.type, job.created_at, job.started_at, job.attempts > 0
    if to is JobStatus.RUNNING:
        wait = (now - created).total_seconds() if created else None

        def count() -> None:
            metrics.JOBS_STARTED.labels(job_type).inc()
            if wait is not None:
                metrics.JOB_QUEUE_WAIT.labels(job_type).observe(max(wait, 0.0))
    else:
        ran = (now - started).total_seconds() if started else None
        # What a client waits for, submit to success; a search answered from
        # the cache at submit (never run by a worker) would teach nothing.
        waited = (now - created).total_seconds() if created and ran_by_worker and to is JobStatus.SUCCEEDED else None

        def count() -> None:
            metrics.JOBS_FINISHED.labels(job_type, str(to)).inc()
            if ran is not None:
                metrics.JOB_RUN_TIME.labels(job_type).observe(max(ran, 0.0))
            if waited is not None:
                poll_hints.record(job_type, max(waited, 0.0))

    after_commit(session, count)


def install_status_guard(sessions: sessionmaker) -> None:
    """Refuse, in every session `sessions` makes, a job status change that
    does not go through transition()."""
    for name, guard in (
        ("do_orm_execute", _refuse_bulk_status_updates),
        ("before_flush", _refuse_attribute_status_changes),
    ):
        if not event.contains(sessions, name, guard):
            event.listen(sessions, name, guard)


def _refuse_bulk_status_updates(state: ORMExecuteState) -> None:
    if not state.is_update or state.execution_options.get(_MARK):
        return
    if state.bind_mapper is None or state.bind_mapper.class_ is not Job:
        return
    # An UPDATE (or a from_statement() over one), so a compilable element.
    statement = state.statement
    assert isinstance(statement, ClauseElement)
    # A SET of the column binds a parameter named exactly "status"; a WHERE
    # on it binds "status_1" and the like.
    if "status" in statement.compile().params:
        raise StatusChangeOutsideTransition("set a job's status with transition()")


def _refuse_attribute_status_changes(session: Session, _context, _instances) -> None:
    for obj in session.dirty:
        if isinstance(obj, Job) and session.is_modified(obj) and _status_changed(obj):
            raise StatusChangeOutsideTransition("set a job's status with transition()")
    for obj in session.new:
        if isinstance(obj, Job) and obj.status not in (None, JobStatus.QUEUED):
            raise StatusChangeOutsideTransition("a job is born queued; move it with transition()")


def _status_changed(job: Job) -> bool:
    from sqlalchemy import inspect

    return inspect(job).attrs.status.history.has_changes()
