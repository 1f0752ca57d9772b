"""A search following an identical one in another worker process: its
worker is free at once, and a leader whose worker is killed leaves nothing
stuck (the logic in one process: tests/db/test_search_followers.py)."""

from __future__ import annotations

import uuid

import pytest

from devstack.processes import wait_until
from tests.integration.corpora import large_corpus

pytestmark = pytest.mark.integration


def test_a_follower_frees_its_worker_and_is_recovered_when_its_leaders_worker_is_killed(new_stack, tiny_cross_encoder):
    """Two worker processes: the second identical search follows the first
    (its task ends at once, the leader still running); the leader's worker is
    SIGKILLed; the other worker's recovery sweep re-sends both and both
    succeed, computed once more."""
    stack = new_stack(
        JOB_LEASE_SECONDS="4",
        RECOVERY_INTERVAL_SECONDS="1",
        # A slow leader: 100 candidates through the cross-encoder take seconds.
        RERANK_MODEL=str(tiny_cross_encoder),
        RERANK_CANDIDATES="100",
    )
    stack.start_web(wait=False)
    workers = stack.start_workers(2)
    stack.wait_started()
    logs = [stack.workdir / f"worker{n}.log" for n in (1, 2)]
    assert stack.ingest("words", large_corpus(120))["status"] == "succeeded"
    body = {"query": f"people and places {uuid.uuid4().hex[:6]}", "pipeline": "rerank", "top_k": 5}

    def submit() -> str:
        response = stack.post("/api/v1/collections/words/search", json=body)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    leader_id = submit()
    wait_until(lambda: stack.get(f"/api/v1/jobs/{leader_id}").json()["status"] == "running", 60, interval=0.05)
    leader_worker = next(n for n, log in enumerate(logs) if leader_id in log.read_text())
    follower_id = submit()
    other_log = logs[1 - leader_worker]
    wait_until(
        lambda: f"{follower_id}] succeeded" in other_log.read_text(), 60, interval=0.05, what="the follower's task"
    )
    assert f"{follower_id}] succeeded" in other_log.read_text() and "'following'" in other_log.read_text()
    assert stack.get(f"/api/v1/jobs/{leader_id}").json()["status"] == "running"  # nobody waited for it
    assert stack.get(f"/api/v1/jobs/{follower_id}").json()["status"] == "running"

    stack.kill(workers[leader_worker])
    leader, follower = (stack.wait_job(job_id, timeout=180) for job_id in (leader_id, follower_id))
    assert (leader["status"], follower["status"]) == ("succeeded", "succeeded")
    assert leader["attempts"] == 2
    assert leader["result"]["hits"] == follower["result"]["hits"]
    assert sorted((leader["result"]["cached"], follower["result"]["cached"])) == [False, True]
