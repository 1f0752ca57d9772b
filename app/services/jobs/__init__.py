"""Jobs: one place for each step of a job's life.

- kinds.py        the status vocabulary and the registry of job kinds
- submit.py       submit(): admission, the job row, the message after commit
- idempotency.py  Idempotency-Key records: a repeated submit replays its job
- broker.py       the job's Celery message, priorities, queue depths
- transitions.py  transition(): the only way a job's status changes
- runner.py       claim, lease, checkpoint and run a job in a worker
- batches.py      run jobs of one kind waiting together as one micro-batch
- poll_hints.py   poll_after_ms and Retry-After from recent jobs' durations
- following.py    a job waiting on an identical running job, finished by it
- queries.py      read, list and cancel jobs for a tenant
- serialize.py    job_to_dict(): the job's JSON, for polls and webhooks
- housekeeping.py recovery of lost messages, retention
"""

from app.services.jobs.batches import run_job
from app.services.jobs.housekeeping import purge_expired_jobs, recover_stuck_jobs
from app.services.jobs.kinds import (
    ACTIVE,
    JOB_TYPES,
    KINDS,
    STATUSES,
    TERMINAL,
    JobKind,
    JobStatus,
    job_queues,
    kind_of,
    worker_queues,
)
from app.services.jobs.queries import JobVersion, cancel_job, get_job, job_version, list_jobs, version_of
from app.services.jobs.runner import (
    CRASHED,
    MAX_ATTEMPTS,
    TIMED_OUT,
    JobBusy,
    JobCancelled,
    JobContext,
    JobFollows,
    JobStopped,
    claim,
    run,
)
from app.services.jobs.serialize import job_to_dict, next_poll_ms, retry_after_seconds
from app.services.jobs.submit import submit
from app.services.jobs.transitions import StatusChangeOutsideTransition, transition

__all__ = [
    "ACTIVE",
    "CRASHED",
    "JOB_TYPES",
    "KINDS",
    "MAX_ATTEMPTS",
    "STATUSES",
    "TERMINAL",
    "TIMED_OUT",
    "JobBusy",
    "JobCancelled",
    "JobContext",
    "JobFollows",
    "JobKind",
    "JobStatus",
    "JobStopped",
    "StatusChangeOutsideTransition",
    "JobVersion",
    "cancel_job",
    "claim",
    "job_version",
    "version_of",
    "get_job",
    "job_queues",
    "job_to_dict",
    "worker_queues",
    "kind_of",
    "list_jobs",
    "purge_expired_jobs",
    "recover_stuck_jobs",
    "next_poll_ms",
    "retry_after_seconds",
    "run",
    "run_job",
    "submit",
    "transition",
]
