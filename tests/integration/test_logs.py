"""Logs are JSON lines, and a job's worker lines carry the id of the request
that submitted it and the job's id."""

from __future__ import annotations

import json
import uuid

import pytest

from devstack.waiting import wait_until
from tests.integration.corpora import unique

pytestmark = pytest.mark.integration


def json_lines(path) -> list[dict]:
    found = []
    for line in path.read_text(errors="replace").splitlines():
        if line.startswith("{"):
            found.append(json.loads(line))
    return found


def test_a_worker_log_line_carries_the_submitting_request_id_and_the_job_id(service):
    name = unique("logs")
    assert service.post("/api/v1/collections", json={"name": name}).status_code == 201
    request_id = f"trace-{uuid.uuid4().hex}"
    response = service.post(
        f"/api/v1/collections/{name}/search",
        json={"query": f"anything {request_id}"},
        headers={"X-Request-ID": request_id},
    )
    assert response.headers["X-Request-ID"] == request_id
    job_id = response.json()["id"]
    assert service.wait_job(job_id)["status"] == "succeeded"

    def worker_line():
        lines = [line for log in service.workdir.glob("worker*.log") for line in json_lines(log)]
        return next((line for line in lines if line.get("job_id") == job_id), None)

    line = wait_until(worker_line, 10, what="a worker log line for the job")
    assert line["request_id"] == request_id
    assert {"time", "level", "logger", "message"} <= set(line)

    access = [line for line in json_lines(service.workdir / "web.log") if line.get("logger") == "quarry.access"]
    mine = [line for line in access if line.get("request_id") == request_id]
    assert mine and mine[0]["route"] == "/api/v1/collections/<name>/search" and mine[0]["status"] == 202
    assert mine[0]["key_prefix"].startswith("qk_") and len(mine[0]["key_prefix"]) == 15


def test_every_line_the_web_process_writes_is_json_gunicorns_own_included(service):
    lines = (service.workdir / "web.log").read_text(errors="replace").splitlines()
    not_json = [line for line in lines if line.strip() and not line.startswith("{")]
    assert not_json == []
    records = [json.loads(line) for line in lines if line.strip()]
    assert any(r["logger"] == "gunicorn.error" and r["message"].startswith("Booting worker") for r in records)
