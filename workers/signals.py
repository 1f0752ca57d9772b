"""Worker process hooks: load the model once before the pool forks, size
torch's threads after it, recover jobs on start."""

from __future__ import annotations

import gc
import logging
import os
import time

from celery.signals import (
    setup_logging,
    task_postrun,
    task_prerun,
    worker_init,
    worker_process_init,
    worker_ready,
)

from app.extensions import celery, db, settings
from app.services.jobs.broker import RECOVERY_PRIORITY, wire_priority
from app.services.jobs.kinds import KINDS, Task

log = logging.getLogger(__name__)
# Tasks whose id is a job's id (the others are housekeeping and webhooks).
JOB_TASK_NAMES = frozenset(kind.task for kind in KINDS.values())


@setup_logging.connect
def _our_logging(**_kwargs) -> None:
    """Worker and beat log like the web (app/logs.py), not Celery's way."""
    from app import logs

    logs.configure(settings.log_level, settings.log_format)


@task_prerun.connect
def _log_context(task_id=None, task=None, **_kwargs) -> None:
    """Every line a job's task logs names the job and the request that made it."""
    from app import logs

    headers = getattr(task.request, "headers", None) or {}
    logs.request_id_var.set(getattr(task.request, "request_id", None) or headers.get("request_id"))
    logs.job_id_var.set(task_id if task is not None and task.name in JOB_TASK_NAMES else None)


@task_postrun.connect
def _clear_log_context(**_kwargs) -> None:
    from app import logs

    logs.request_id_var.set(None)
    logs.job_id_var.set(None)


@worker_init.connect
def _load_model_before_fork(**_kwargs) -> None:
    """The worker's main process loads the model before it forks the pool, so
    every pool process shares one copy of the weights and of torch's own
    memory (copy-on-write: nothing writes to them). Loading runs no model
    computation, so torch's thread pools start only in the children, after
    the fork, where they are safe to start."""
    if not settings.worker_preload_model:
        return
    from app.services.handlers.indexing import embedder

    started = time.monotonic()
    embedder()
    # Out of the garbage collector's sight: a collection in a pool process
    # would otherwise write to every object's header and copy the pages
    # holding torch's and the model's Python objects into each process.
    gc.freeze()
    log.info("model loaded in %.1f s, to be shared by the pool", time.monotonic() - started)


@worker_process_init.connect
def _ready_the_child(**_kwargs) -> None:
    """Each prefork child: its own database connections, a share of the
    cores for torch and for FAISS (children x threads never exceeds them),
    and the model
    (inherited from the main process, or loaded here when not preloaded)."""
    from app.search.embedding import set_torch_threads
    from app.search.vector_index import set_search_threads
    from app.services.handlers.embedding_threads import pool_share
    from app.services.handlers.indexing import embedder

    # Connections inherited from the parent must not be shared across processes.
    if db.engine is not None:
        db.engine.dispose(close=False)
    set_torch_threads(pool_share())
    set_search_threads(pool_share())
    started = time.monotonic()
    embedder()
    log.info("pool process %d ready in %.1f s", os.getpid(), time.monotonic() - started)


@worker_ready.connect
def _recover_on_start(**_kwargs) -> None:
    """A worker that starts after a crash picks up the jobs (and webhook
    deliveries) the dead one held as soon as their leases run out, without
    waiting for beat."""
    celery.send_task(Task.RECOVER_STUCK_JOBS, priority=wire_priority(RECOVERY_PRIORITY))
    celery.send_task(Task.SWEEP_WEBHOOK_DELIVERIES, priority=wire_priority(RECOVERY_PRIORITY))
