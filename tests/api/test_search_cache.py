"""The search result cache: a repeated search is answered at submit, without
a worker, until a write moves the collection's generation; identical
searches running at once are computed once, the later ones following the
first without holding a worker."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.processes import wait_until
from tests.integration.corpora import TOPICS, large_corpus, unique


@pytest.fixture(scope="module")
def corpus(api):
    name = unique("cache")
    job = api.ingest(name, [{"id": doc_id, "text": text} for doc_id, text in TOPICS])
    assert job["status"] == "succeeded", job
    return name


def test_a_repeated_search_is_a_cache_hit_until_an_ingest_moves_the_generation(api, corpus):
    body = {"query": f"honey from flowers {uuid.uuid4().hex[:6]}", "top_k": 3}
    first = api.search(corpus, **body)
    assert first["status"] == "succeeded" and first["result"]["cached"] is False

    answer = api.post(f"/api/v1/collections/{corpus}/search", json=body)
    assert answer.status_code == 202
    repeat = answer.json()
    assert repeat["status"] == "succeeded" and repeat["result"]["cached"] is True  # born succeeded
    assert repeat["attempts"] == 0  # no worker ever claimed it
    assert repeat["result"]["hits"] == first["result"]["hits"]
    assert repeat["id"] != first["id"] and repeat["finished_at"] is not None

    api.ingest(corpus, [{"id": "honey-2", "text": "Beekeepers harvest honey from the hive's frames."}])
    after = api.search(corpus, **body)
    assert after["result"]["cached"] is False
    assert after["result"]["index_generation"] > first["result"]["index_generation"]
    other_options = api.search(corpus, **{**body, "top_k": 4})
    assert other_options["result"]["cached"] is False


def test_identical_concurrent_searches_run_the_pipeline_once(api, corpus):
    body = {"query": f"a string instrument played with a bow {uuid.uuid4().hex[:6]}", "top_k": 5, "pipeline": "rerank"}
    with ThreadPoolExecutor(3) as pool:
        jobs = list(pool.map(lambda _: api.search(corpus, **body), range(3)))
    assert all(job["status"] == "succeeded" for job in jobs)
    assert sorted(job["result"]["cached"] for job in jobs) == [False, True, True]
    assert jobs[0]["result"]["hits"] == jobs[1]["result"]["hits"] == jobs[2]["result"]["hits"]


def test_a_follower_frees_its_worker_and_is_recovered_when_its_leaders_worker_is_killed(new_stack, tiny_cross_encoder):
    """Two worker processes: the second identical search follows the first
    (its task ends at once, the leader still running); the leader's worker is
    SIGKILLed; recovery re-sends both and both succeed, computed once more."""
    stack = new_stack(
        JOB_LEASE_SECONDS="4",
        RECOVERY_INTERVAL_SECONDS="1",
        # A slow leader: 100 candidates through the cross-encoder take seconds.
        RERANK_MODEL=str(tiny_cross_encoder),
        RERANK_CANDIDATES="100",
    )
    stack.start_web()
    workers = [stack.start_worker(), stack.start_worker()]
    logs = [stack.workdir / f"worker{n}.log" for n in (1, 2)]
    stack.start_beat()
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
