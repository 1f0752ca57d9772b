"""What a job can be: the status vocabulary and the registry of job kinds.

Everything else derives from here: Celery task names, routes and queues
(app/celery_config.py, workers/tasks.py), the schema enums
(app/api/schemas.py), the poll hints, and the check of the Procfile's `-Q`
list. Adding a job kind is one entry in KINDS, its handler in
app/services/handlers/ (and a batch handler or on_finish if it has one), and
the submit function of its web half (docs/architecture.md).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.config import Settings


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


ACTIVE = frozenset({JobStatus.QUEUED, JobStatus.RUNNING})
TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})
STATUSES = tuple(JobStatus)


@dataclass(frozen=True)
class Batching:
    """How jobs of one kind waiting together run as one micro-batch
    (app/services/jobs/batches.py)."""

    # "module:function" taking a list of JobContexts and returning each one's
    # result, JobFailure or JobFollows.
    handler: str
    # The Settings fields that bound a batch: at most this many jobs (1 turns
    # batching off), and how long a batch of more than one waits for more to
    # join. Named here and read when a batch runs: settings are bound at run
    # time, never when this registry is imported.
    max_jobs_setting: str
    wait_ms_setting: str

    def limits(self, settings: Settings) -> tuple[int, float]:
        """(max_jobs, wait_ms) under these settings."""
        return int(getattr(settings, self.max_jobs_setting)), float(getattr(settings, self.wait_ms_setting))


@dataclass(frozen=True)
class JobKind:
    """One kind of job: how it is named, queued, run and polled."""

    name: str
    queue: str
    # "module:function" taking a JobContext and returning the result dict;
    # resolved in the worker only, so the web process never imports it.
    handler: str
    # When a poll of a queued or running job is next worth making, until
    # finished jobs of the kind teach better (app/services/jobs/poll_hints.py);
    # the hint never goes below the floor.
    poll_after_ms: int
    poll_floor_ms: int
    # "module:function" taking the job id, run once the job's final status is
    # committed (never while another worker may still need what it removes).
    on_finish: str | None = None
    # Jobs of this kind waiting together run as one micro-batch.
    batching: Batching | None = None

    @property
    def task(self) -> str:
        return f"quarry.{self.name}"


KINDS: dict[str, JobKind] = {
    kind.name: kind
    for kind in (
        JobKind(
            "ingest",
            queue="ingest",
            handler="app.services.handlers.ingest:run_ingest",
            poll_after_ms=2000,
            poll_floor_ms=1000,
            on_finish="app.services.staging:remove_staged_files",
        ),
        JobKind(
            "search",
            queue="search",
            handler="app.services.handlers.search:run_search",
            poll_after_ms=200,
            poll_floor_ms=20,
            batching=Batching(
                "app.services.handlers.search:run_searches",
                max_jobs_setting="search_batch_max",  # SEARCH_BATCH_MAX
                wait_ms_setting="search_batch_wait_ms",  # SEARCH_BATCH_WAIT_MS
            ),
        ),
        JobKind(
            "search_batch",
            queue="search",
            handler="app.services.handlers.search:run_search_batch",
            poll_after_ms=500,
            poll_floor_ms=50,
        ),
        # Deletions write to the collection like ingests, so they share their lane.
        JobKind(
            "delete_document",
            queue="ingest",
            handler="app.services.handlers.deletion:run_delete_document",
            poll_after_ms=500,
            poll_floor_ms=200,
        ),
        JobKind(
            "delete_collection",
            queue="ingest",
            handler="app.services.handlers.deletion:run_delete_collection",
            poll_after_ms=500,
            poll_floor_ms=200,
        ),
    )
}
JOB_TYPES = tuple(KINDS)
# Short housekeeping tasks share the fast lane with searches.
MAINTENANCE_QUEUE = "search"
# Webhook deliveries have their own lane: a slow receiver never holds up a job.
WEBHOOKS_QUEUE = "webhooks"


class Task(StrEnum):
    """The Celery tasks that are not a job kind's: housekeeping on the fast
    lane, webhook work on its own."""

    RECOVER_STUCK_JOBS = "quarry.maintenance.recover_stuck_jobs"
    PURGE_EXPIRED_JOBS = "quarry.maintenance.purge_expired_jobs"
    SWEEP_STAGED_UPLOADS = "quarry.maintenance.sweep_staged_uploads"
    DELIVER_WEBHOOK = "quarry.webhooks.deliver"
    SWEEP_WEBHOOK_DELIVERIES = "quarry.webhooks.sweep_due_deliveries"

    @property
    def queue(self) -> str:
        return WEBHOOKS_QUEUE if self.startswith("quarry.webhooks.") else MAINTENANCE_QUEUE


def kind_of(job_type: str) -> JobKind:
    return KINDS[job_type]


def job_queues() -> tuple[str, ...]:
    """The queues jobs wait in, in a stable order."""
    return tuple(dict.fromkeys([*(kind.queue for kind in KINDS.values()), MAINTENANCE_QUEUE]))


def worker_queues() -> tuple[str, ...]:
    """Every queue a worker must consume (the Procfile's -Q list)."""
    return (*job_queues(), WEBHOOKS_QUEUE)
