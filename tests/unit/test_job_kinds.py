"""The registry of job kinds drives Celery's routes and the Procfile's queues."""

from __future__ import annotations

from pathlib import Path

from app.celery_config import celery_config
from app.config import Settings
from app.services.jobs import KINDS, worker_queues
from app.services.jobs.runner import handler_for

ROOT = Path(__file__).resolve().parents[2]


def procfile_worker_queues() -> set[str]:
    for line in (ROOT / "Procfile").read_text().splitlines():
        if line.startswith("worker:"):
            words = line.split()
            return set(words[words.index("-Q") + 1].split(","))
    raise AssertionError("the Procfile has no worker")


def test_the_procfile_worker_consumes_every_queue_the_registry_names():
    assert procfile_worker_queues() == set(worker_queues())


def test_celery_routes_each_kind_to_its_queue():
    for kind in KINDS.values():
        assert celery_config(Settings.from_env())["task_routes"][kind.task] == {"queue": kind.queue}
    assert {queue.name for queue in celery_config(Settings.from_env())["task_queues"]} == set(worker_queues())


def test_every_kind_names_a_handler_that_exists():
    for name in KINDS:
        assert callable(handler_for(name)), name


def test_every_batched_kind_names_a_batch_handler_and_limits_that_exist():
    from app.config import Settings
    from app.services.jobs.runner import load_reference

    defaults = Settings.from_env()
    for kind in KINDS.values():
        if kind.batching is not None:
            assert callable(load_reference(kind.batching.handler)), kind.name
            max_jobs, wait_ms = kind.batching.limits(defaults)
            assert max_jobs >= 1 and wait_ms >= 0, kind.name
    search = KINDS["search"].batching
    assert search is not None and search.limits(defaults) == (defaults.search_batch_max, defaults.search_batch_wait_ms)
