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
        30, what="Flower to see the worker",
    )
    assert any(worker.startswith("test1-") for worker in workers)

    # Flower learns of tasks from the events it receives once it is up.
    name = unique("flower")
    assert service.post("/api/v1/collections", json={"name": name}).status_code == 201
    job = service.search(name, query="anything for flower")
    assert job["status"] == "succeeded"

    def task_seen():
        tasks = requests.get(url + "/api/tasks", auth=auth, timeout=10).json()
        return tasks.get(job["id"])

    task = wait_until(task_seen, 60, what="Flower to list the job's task")
    assert task["name"] == "quarry.search" and task["state"] == "SUCCESS"
    assert name in task["args"]  # the job's collection, shown beside its id


def test_flower_refuses_to_listen_beyond_loopback_without_a_password(tmp_path):
    done = subprocess.run(
        [str(BIN / "celery"), "-A", "workers", "flower", "--address=0.0.0.0", "--port=1"],
        cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=60,
        env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "QUARRY_VAR_DIR": str(tmp_path)},
    )
    assert done.returncode != 0
    assert "FLOWER_BASIC_AUTH" in done.stderr + done.stdout
