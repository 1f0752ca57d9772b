"""Running a job in a worker: claim it, hold a lease, checkpoint, finish.

A worker holds a *lease* on a running job and renews it at every checkpoint;
when the lease runs out the worker is presumed dead and the job may be
claimed again (by the redelivered message, or by the recovery sweep that
re-sends it). Every state change goes through transition(), so a message
delivered twice never runs two writers at once and never moves a finished
job.
"""

from __future__ import annotations

import importlib
import logging
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from typing import Any

from sqlalchemy import update
from sqlalchemy.orm import Session

from app.extensions import db, settings
from app.models import Job, utcnow
from app.services.errors import JobFailure
from app.services.jobs.kinds import ACTIVE, JobStatus, kind_of
from app.services.jobs.transitions import transition
from app.services.webhooks.events import record_progress_if_due

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5

Handler = Callable[["JobContext"], dict[str, Any]]


# Ends the lease owner of a job a micro-batch claimed without its message
# (app/services/jobs/batches.py).
BATCHED_OWNER_SUFFIX = ":batched"


class JobBusy(Exception):
    """Another live worker holds the job; try again after `retry_after` seconds.
    `batched`: a batch took the job without this message, which therefore has
    nothing left to do (should the batch die, the recovery sweep re-sends)."""

    def __init__(self, retry_after: int, batched: bool = False) -> None:
        super().__init__(f"job is leased to another worker for {retry_after}s")
        self.retry_after = retry_after
        self.batched = batched


# The failures a runner records for any job kind, alone or batched.
TIMED_OUT = JobFailure("timeout", "The job ran past its time limit.")
CRASHED = JobFailure("internal_error", "The job failed unexpectedly.")


class JobFollows(Exception):
    """The job follows an identical one running elsewhere (jobs/following.py),
    whose final transition() finishes it too: its worker leaves it running
    and is free at once. A batch handler returns it as the job's outcome."""

    def __init__(self, leader_id: str) -> None:
        super().__init__(f"follows job {leader_id}")
        self.leader_id = leader_id


class JobStopped(Exception):
    """The job's lease was taken over by another worker: stop quietly."""


class JobCancelled(Exception):
    """The client cancelled the job; the handler stops at this checkpoint."""


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
    # What the job has done so far, reported if it is cancelled.
    partial_result: dict[str, Any] | None = field(default=None)

    @classmethod
    def of(cls, job: Job, owner: str) -> JobContext:
        """The context of a job `owner` has just claimed."""
        return cls(
            job_id=job.id,
            owner=owner,
            tenant_id=job.tenant_id,
            job_type=job.type,
            params=dict(job.params or {}),
            collection_id=job.collection_id,
            lease_seconds=settings.job_lease_seconds,
        )

    def require_collection_id(self) -> str:
        """The id of the collection the job works on; every job kind so far
        has one (submit() records it), but the column allows none."""
        if self.collection_id is None:
            raise RuntimeError(f"job {self.job_id} ({self.job_type}) has no collection")
        return self.collection_id

    def checkpoint(
        self, processed: int, total: int | None = None, partial_result: dict[str, Any] | None = None
    ) -> None:
        """Record progress and renew the lease. Raises JobCancelled when the
        client asked to cancel, JobStopped when another worker took over."""
        if partial_result is not None:
            self.partial_result = partial_result
        now = utcnow()
        values: dict[str, Any] = {
            "progress_processed": processed,
            "lease_expires_at": now + timedelta(seconds=self.lease_seconds),
            "updated_at": now,
        }
        if total is not None:
            values["progress_total"] = total
        with db.session_scope() as session:
            row = session.execute(
                update(Job)
                .where(Job.id == self.job_id, Job.status == JobStatus.RUNNING, Job.lease_owner == self.owner)
                .values(**values)
                .returning(Job.cancel_requested_at, Job.progress_event_at)
            ).first()
            if row is not None:
                record_progress_if_due(session, self.job_id, row.progress_event_at, now)
            session.commit()
        if row is None:
            raise JobStopped(self.job_id)
        if row.cancel_requested_at is not None:
            raise JobCancelled(self.job_id)


def claim(session: Session, job_id: str, owner: str, lease_seconds: int) -> Job | None:
    """Take the job for this worker and commit. None when there is nothing
    to do (unknown or finished job); JobBusy when a live worker holds it."""
    now = utcnow()
    claimed = transition(
        session,
        job_id,
        JobStatus.RUNNING,
        where=(
            Job.attempts < MAX_ATTEMPTS,
            (Job.status == JobStatus.QUEUED) | Job.lease_expires_at.is_(None) | (Job.lease_expires_at < now),
        ),
        lease_owner=owner,
        lease_expires_at=now + timedelta(seconds=lease_seconds),
        attempts=Job.attempts + 1,
        follows_job_id=None,  # a follower re-sent after its leader died runs on its own
    )
    session.commit()
    if claimed is not None:
        return claimed
    job = session.get(Job, job_id, populate_existing=True)
    if job is None or job.status not in ACTIVE:
        return None
    expires_at = job.lease_expires_at
    lease_lives = expires_at is not None and expires_at >= now
    if job.attempts >= MAX_ATTEMPTS and not lease_lives:  # a live last attempt is left to run
        transition(
            session,
            job_id,
            JobStatus.FAILED,
            error_code="internal_error",
            error_message=f"The job's worker stopped {job.attempts} times; giving up.",
        )
        session.commit()
        return None
    remaining = (expires_at - now).total_seconds() if lease_lives and expires_at is not None else 1
    batched = held_by_a_batch(job.lease_owner, expires_at, now)
    raise JobBusy(max(1, int(remaining) + 1), batched=batched)


def held_by_a_batch(lease_owner: str | None, lease_expires_at: datetime | None, now: datetime) -> bool:
    """Whether a micro-batch holds the job under a lease still alive at `now`."""
    alive = lease_expires_at is not None and lease_expires_at >= now
    return alive and (lease_owner or "").endswith(BATCHED_OWNER_SUFFIX)


@cache
def handler_for(job_type: str) -> Handler:
    return load_reference(kind_of(job_type).handler)


def finish(job_type: str, job_id: str) -> None:
    """The kind's clean-up, once the job's final status is committed."""
    hook = kind_of(job_type).on_finish
    if hook is not None:
        load_reference(hook)(job_id)


def load_reference(reference: str) -> Callable[..., Any]:
    module, _, function = reference.partition(":")
    return getattr(importlib.import_module(module), function)


def run(job_id: str, handler: Handler | None = None, *, timeout_errors: tuple[type[BaseException], ...] = ()) -> str:
    """Claim and run one job to a final state; returns the final status, or
    "skipped" when there was nothing to run, "stopped" when another worker
    took the job over, "following" when an identical job's final transition
    will finish it. The handler defaults to the one its kind names.

    Raises JobBusy when another live worker holds the job (the task wrapper
    retries later); every other outcome is recorded on the job row.
    """
    owner = uuid.uuid4().hex
    with db.session_scope() as session:
        job = claim(session, job_id, owner, settings.job_lease_seconds)
        if job is None:
            return "skipped"
        ctx = JobContext.of(job, owner)
        cancelled_before_start = job.cancel_requested_at is not None
    handler = handler or handler_for(ctx.job_type)
    log.info("job %s (%s) started", job_id, ctx.job_type)
    started = time.monotonic()
    values: dict[str, Any]
    try:
        if cancelled_before_start:  # cancelled while its worker was dead
            raise JobCancelled(job_id)
        to, values = final_move(handler(ctx))
    except JobStopped:
        return "stopped"
    except JobFollows as follows:
        log.info("job %s (%s) follows job %s", job_id, ctx.job_type, follows.leader_id)
        return "following"
    except JobCancelled:
        to, values = JobStatus.CANCELLED, {"result": ctx.partial_result}
    except JobFailure as exc:
        to, values = final_move(exc)
    except timeout_errors:
        to, values = final_move(TIMED_OUT)
    except Exception:
        log.exception("job %s crashed", job_id)
        to, values = final_move(CRASHED)
    with db.session_scope() as session:
        moved = transition(session, job_id, to, only_from=[JobStatus.RUNNING], held_by=owner, **values)
        session.commit()
    if not moved:
        return "stopped"
    log.info("job %s (%s) %s in %.0f ms", job_id, ctx.job_type, to, (time.monotonic() - started) * 1000)
    finish(ctx.job_type, job_id)
    return str(to)


def final_move(outcome: dict[str, Any] | JobFailure) -> tuple[JobStatus, dict[str, Any]]:
    """Where a handler's outcome takes its job, and what it writes there:
    the result on success, the error's code and message on failure."""
    if isinstance(outcome, JobFailure):
        return JobStatus.FAILED, {"error_code": outcome.code, "error_message": outcome.message}
    return JobStatus.SUCCEEDED, {"result": outcome, "progress_processed": Job.progress_total}
