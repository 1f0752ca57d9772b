"""Celery tasks: thin wrappers that hand a job id to app.services."""

from __future__ import annotations

from celery.exceptions import SoftTimeLimitExceeded

from app.extensions import celery, db
from app.services import ingest, jobs, search


def _run(task, job_id: str, handler) -> str:
    try:
        return jobs.run(job_id, handler, timeout_errors=(SoftTimeLimitExceeded,))
    except jobs.JobBusy as busy:
        # Another worker holds a live lease on this job: look again once it
        # would have expired. The job itself is never lost or run twice.
        raise task.retry(countdown=busy.retry_after, max_retries=None)


@celery.task(name="quarry.ingest", bind=True)
def ingest_task(self, job_id: str) -> str:
    return _run(self, job_id, ingest.run_ingest)


@celery.task(name="quarry.search", bind=True)
def search_task(self, job_id: str) -> str:
    return _run(self, job_id, search.run_search)


@celery.task(name="quarry.maintenance.recover_stuck_jobs")
def recover_stuck_jobs() -> int:
    with db.session_scope() as session:
        return len(jobs.recover_stuck_jobs(session))


@celery.task(name="quarry.maintenance.purge_expired_jobs")
def purge_expired_jobs() -> int:
    with db.session_scope() as session:
        return jobs.purge_expired_jobs(session)
