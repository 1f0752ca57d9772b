"""Celery tasks: thin wrappers that hand a job id to app.services.

One task per job kind, named and routed by the registry
(app/services/jobs/kinds.py); the runner looks up the kind's handler.
"""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded

from app.extensions import celery, db
from app.services import jobs, staging
from app.services.webhooks import delivery as webhook_delivery


def _job_task(kind: jobs.JobKind):
    @celery.task(name=kind.task, bind=True)
    def run_job(task, job_id: str) -> str:
        try:
            return jobs.run(job_id, timeout_errors=(SoftTimeLimitExceeded,))
        except jobs.JobBusy as busy:
            # Another worker holds a live lease on this job: look again once it
            # would have expired. The job itself is never lost or run twice.
            raise task.retry(countdown=busy.retry_after, max_retries=None)

    return run_job


JOB_TASKS = {name: _job_task(kind) for name, kind in jobs.KINDS.items()}


@celery.task(name="quarry.maintenance.recover_stuck_jobs")
def recover_stuck_jobs() -> int:
    with db.session_scope() as session:
        return len(jobs.recover_stuck_jobs(session))


@celery.task(name="quarry.maintenance.purge_expired_jobs")
def purge_expired_jobs() -> int:
    with db.session_scope() as session:
        return jobs.purge_expired_jobs(session)


@celery.task(name="quarry.maintenance.sweep_staged_uploads")
def sweep_staged_uploads() -> int:
    with db.session_scope() as session:
        return len(staging.sweep_staged_uploads(session))


@celery.task(name="quarry.webhooks.deliver")
def deliver_webhook(delivery_id: str) -> str:
    return webhook_delivery.deliver(delivery_id)


@celery.task(name="quarry.webhooks.sweep_due_deliveries")
def sweep_due_deliveries() -> int:
    with db.session_scope() as session:
        return webhook_delivery.sweep_due_deliveries(session)
