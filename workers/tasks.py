"""Celery tasks: thin wrappers that hand a job id to app.services.

One task per job kind, named and routed by the registry
(app/services/jobs/kinds.py); the runner looks up the kind's handler.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from celery.exceptions import SoftTimeLimitExceeded
from sqlalchemy import exc as sa_exc
from sqlalchemy.orm import Session

from app.extensions import PerProcess, celery, db, settings
from app.services import jobs, staging
from app.services.jobs.idempotency import purge_expired_keys
from app.services.jobs.kinds import Task
from app.services.webhooks import delivery as webhook_delivery

log = logging.getLogger(__name__)


def _job_task(kind: jobs.JobKind):
    @celery.task(name=kind.task, bind=True)
    def run_job(task, job_id: str) -> str:
        try:
            return jobs.run_job(job_id, kind.name, timeout_errors=(SoftTimeLimitExceeded,))
        except jobs.JobBusy as busy:
            if busy.batched:  # a batch runs it; this message has nothing left to do
                return "skipped"
            # Another worker holds a live lease on this job: look again once it
            # would have expired. The job itself is never lost or run twice.
            raise task.retry(countdown=busy.retry_after, max_retries=None) from busy

    return run_job


JOB_TASKS = {name: _job_task(kind) for name, kind in jobs.KINDS.items()}


def _sweep(name: str, sweep: Callable[[Session], int]) -> int:
    """A periodic sweep, run by beat and every worker. With the database busy
    (SQLite locked by a long write) or down, this tick does nothing and says
    so in one line; the next tick tries again."""
    try:
        with db.session_scope() as session:
            return sweep(session)
    except sa_exc.OperationalError as exc:
        log.warning("%s skipped this time, the database is busy or down: %s", name, exc.orig)
        return 0


@celery.task(name=Task.RECOVER_STUCK_JOBS)
def recover_stuck_jobs() -> int:
    return _sweep("job recovery", lambda session: len(jobs.recover_stuck_jobs(session)))


@celery.task(name=Task.PURGE_EXPIRED_JOBS)
def purge_expired_jobs() -> int:
    with db.session_scope() as session:
        return (
            jobs.purge_expired_jobs(session)
            + webhook_delivery.purge_old_deliveries(session)
            + purge_expired_keys(session)
        )


@celery.task(name=Task.SWEEP_STAGED_UPLOADS)
def sweep_staged_uploads() -> int:
    with db.session_scope() as session:
        return len(staging.sweep_staged_uploads(session))


delivery_threads = PerProcess(
    lambda: ThreadPoolExecutor(settings.webhook_delivery_threads, thread_name_prefix="webhook")
)


@celery.task(name=Task.DELIVER_WEBHOOK)
def deliver_webhook(delivery_id: str) -> None:
    # An attempt may wait WEBHOOK_TIMEOUT_SECONDS on a slow receiver: it waits in a thread, so
    # this pool process is free for jobs at once. If the process dies
    # mid-attempt, the attempt's lease runs out and a sweep sends the
    # delivery again: nothing is lost by acknowledging the message now.
    delivery_threads.get().submit(_deliver, delivery_id)


def _deliver(delivery_id: str) -> None:
    try:
        webhook_delivery.deliver(delivery_id)
    except Exception:  # a thread's exception would vanish silently
        log.exception("webhook delivery %s failed; the sweep will retry it", delivery_id)


@celery.task(name=Task.SWEEP_WEBHOOK_DELIVERIES)
def sweep_due_deliveries() -> int:
    return _sweep("the webhook delivery sweep", webhook_delivery.sweep_due_deliveries)
