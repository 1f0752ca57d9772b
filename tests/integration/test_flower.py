"""Flower, started as the Procfile starts it, behind basic auth: it lists the
running worker and a finished job's task, named by type with its collection."""

from __future__ import annotations

import subprocess

import pytest
import requests

from devstack.processes import BIN, PROJECT_ROOT
from devstack.waiting import wait_until
from tests.integration.corpora import unique

pytestmark = pytest.mark.integration


def test_flower_lists_the_worker_and_a_finished_task_behind_basic_auth(service):
    url = service.start_flower(FLOWER_BASIC_AUTH="ops:s3cret")
    auth = ("ops", "s3cret")
    assert requests.get(url + "/api/workers", timeout=10).status_code == 401
    workers = wait_until(
        lambda: requests.get(url + "/api/workers", params={"refresh": "1"}, auth=auth, timeout=10).json() or None,
        30,
        what="Flower to see the worker",
    )
    assert any(worker.startswith("test1-") for worker in workers)

    # Flower learns of tasks from the events it receives once its event
    # consumer is up, which may be a moment after its API answers: a job
    # whose first events it missed shows without a name; send another.
    name = unique("flower")
    assert service.post("/api/v1/collections", json={"name": name}).status_code == 201
    task = None
    for attempt in range(5):
        job = service.search(name, query=f"anything for flower {attempt}")
        assert job["status"] == "succeeded"
        task = seen_by_flower(url, auth, job["id"])
        if task is not None:
            break
    assert task is not None, "Flower never listed a finished job's task"
    assert task["name"] == "quarry.search" and task["state"] == "SUCCESS"
    # From the worker's events alone (the web sends no task-sent event).
    assert task["received"] and task["started"] and task["succeeded"], task
    assert name in task["args"]  # the job's collection, shown beside its id


def seen_by_flower(url, auth, job_id) -> dict | None:
    def described():
        task = requests.get(url + "/api/tasks", auth=auth, timeout=10).json().get(job_id) or {}
        return task if task.get("name") and task.get("state") == "SUCCESS" else None

    try:
        return wait_until(described, 15, what="Flower to list the job's task")
    except TimeoutError:
        return None


def test_flower_refuses_to_listen_beyond_loopback_without_a_password(tmp_path):
    done = subprocess.run(
        [str(BIN / "celery"), "-A", "workers", "flower", "--address=0.0.0.0", "--port=1"],
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "QUARRY_VAR_DIR": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "FLOWER_BASIC_AUTH" in done.stderr + done.stdout
