"""Running jobs of one kind together: a micro-batch.

The worker that receives a job's message claims it as usual, then also
claims the jobs of the same kind already waiting (up to the limits its
kind's registry entry names, kinds.Batching), and runs them through one
batch handler: one model call and one index call for many searches. Each
job keeps its own row, lease, status, result and webhook; every move is a
transition(), so no job is run twice. A job the handler reports as
following another (JobFollows) is left running: its leader finishes it.

A job claimed by a batch still has its own message in the queue. When that
message arrives, the job is held by the batch (JobBusy with `batched`) or
finished: either way the message has nothing left to do and is dropped. If
the batch's worker dies, the jobs' leases run out and the recovery sweep
sends them again, so nothing is lost. Batching waits only when there is
more than one job: a lone job runs at once.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from app import metrics
from app.extensions import db, settings
from app.models import Job, utcnow
from app.services.errors import JobFailure
from app.services.jobs.kinds import JobStatus, kind_of
from app.services.jobs.runner import (
    BATCHED_OWNER_SUFFIX,
    CRASHED,
    TIMED_OUT,
    JobContext,
    JobFollows,
    claim,
    final_move,
    finish,
    held_by_a_batch,
    load_reference,
    run,
)
from app.services.jobs.transitions import transition

log = logging.getLogger(__name__)

# Outcome per job id: its result, the JobFailure that ends it, or JobFollows
# when an identical job's final transition will finish it.
Outcomes = dict[str, "dict[str, Any] | JobFailure | JobFollows"]
BatchHandler = Callable[[list[JobContext]], Outcomes]


def run_job(job_id: str, job_type: str, *, timeout_errors: tuple[type[BaseException], ...] = ()) -> str:
    """Run a job the way its kind wants: alone, or in a batch with the jobs
    of its kind waiting beside it."""
    batching = kind_of(job_type).batching
    if batching is None:
        return run(job_id, timeout_errors=timeout_errors)
    max_jobs, wait_ms = batching.limits(settings)
    if max_jobs <= 1:
        return run(job_id, timeout_errors=timeout_errors)
    handler = load_reference(batching.handler)
    return run_batch(job_id, handler, max_jobs=max_jobs, wait_ms=wait_ms, timeout_errors=timeout_errors)


def run_batch(
    job_id: str,
    handler: BatchHandler,
    *,
    max_jobs: int,
    wait_ms: float,
    timeout_errors: tuple[type[BaseException], ...] = (),
) -> str:
    """Claim this job and the ones of its kind waiting beside it, run them as
    one batch, finish each. Returns this job's final status ("skipped" when
    there was nothing to run); raises JobBusy like runner.run."""
    if _taken_already(job_id):
        return "skipped"
    owner = uuid.uuid4().hex
    with db.session_scope() as session:
        job = claim(session, job_id, owner, settings.job_lease_seconds)
        if job is None:
            return "skipped"
        contexts = [JobContext.of(job, owner)]
    contexts += _claim_waiting(job.type, owner, max_jobs - 1, exclude=job_id)
    if len(contexts) > 1 and wait_ms > 0 and len(contexts) < max_jobs:
        time.sleep(wait_ms / 1000)  # more are arriving: let a few more join
        contexts += _claim_waiting(job.type, owner, max_jobs - len(contexts), exclude=job_id)
    metrics.JOB_BATCH_SIZE.labels(job.type).observe(len(contexts))
    started = time.monotonic()
    outcomes = _run(handler, contexts, timeout_errors)
    statuses = _finish_all(contexts, outcomes)
    log.info("batch of %d %s jobs finished in %.0f ms", len(contexts), job.type, (time.monotonic() - started) * 1000)
    return statuses.get(job_id, "stopped")


def _taken_already(job_id: str) -> bool:
    """Whether the job's own message has nothing left to do: the job is
    final, or a batch holds it under a live lease. Under load most messages
    of a batched kind are of such jobs; this reads the row without a write
    transaction (on SQLite, without waiting for the write lock), where
    claim() would try an UPDATE first. claim() still decides every job that
    may be taken."""
    with db.reads_only(), db.session_scope() as session:
        row = session.execute(select(Job.status, Job.lease_owner, Job.lease_expires_at).where(Job.id == job_id)).first()
    if row is None:
        return False  # claim() says what an unknown job is
    status, lease_owner, lease_expires_at = row
    if JobStatus(status).is_terminal:
        return True
    return status == JobStatus.RUNNING and held_by_a_batch(lease_owner, lease_expires_at, utcnow())


def _claim_waiting(job_type: str, owner: str, limit: int, *, exclude: str) -> list[JobContext]:
    """Claim up to `limit` queued jobs of this type, in the order the broker
    hands them out (priority, then oldest first), in one transaction; a job
    another worker claims first is simply not ours."""
    if limit <= 0:
        return []
    batched_owner = owner + BATCHED_OWNER_SUFFIX
    now = utcnow()
    with db.session_scope() as session:
        waiting = session.scalars(
            select(Job.id)
            .where(Job.status == JobStatus.QUEUED, Job.type == job_type, Job.id != exclude)
            .order_by(Job.priority, Job.updated_at)
            .limit(limit)
        ).all()
        moves = (
            transition(
                session,
                job_id,
                JobStatus.RUNNING,
                only_from=[JobStatus.QUEUED],
                lease_owner=batched_owner,
                lease_expires_at=now + timedelta(seconds=settings.job_lease_seconds),
                attempts=Job.attempts + 1,
            )
            for job_id in waiting
        )
        claimed = [job for job in moves if job is not None]
        session.commit()
        return [JobContext.of(job, batched_owner) for job in claimed]


def _run(handler: BatchHandler, contexts: list[JobContext], timeout_errors) -> Outcomes:
    try:
        return handler(contexts)
    except timeout_errors:
        failure = TIMED_OUT
    except Exception:
        log.exception("batch of %d %s jobs crashed", len(contexts), contexts[0].job_type)
        failure = CRASHED
    return {ctx.job_id: failure for ctx in contexts}


def _finish_all(contexts: list[JobContext], outcomes: Outcomes) -> dict[str, str]:
    """Every job's final status, written in one transaction ("following"
    for the jobs left running for their leader to finish)."""
    moves: dict[str, JobStatus] = {}
    following = {job_id for job_id, outcome in outcomes.items() if isinstance(outcome, JobFollows)}
    with db.session_scope() as session:
        for ctx in contexts:
            outcome = outcomes.get(ctx.job_id, CRASHED)
            if isinstance(outcome, JobFollows):
                continue
            to, values = final_move(outcome)
            if transition(session, ctx.job_id, to, only_from=[JobStatus.RUNNING], held_by=ctx.owner, **values):
                moves[ctx.job_id] = to
        session.commit()
    for ctx in contexts:
        if ctx.job_id in moves:
            finish(ctx.job_type, ctx.job_id)
    return {**dict.fromkeys(following, "following"), **{job_id: str(to) for job_id, to in moves.items()}}
