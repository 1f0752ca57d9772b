"""Nothing lost: the broker going away, and a worker killed mid-job."""

from __future__ import annotations

import os
import signal
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from devstack.processes import wait_until
from tests.integration.brokers import redis_broker_only
from tests.integration.corpora import large_corpus
from tests.integration.problems import assert_problem

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def stack(module_stack):
    """Web and a worker with two pool processes, for the tests that leave
    them working (Redis started again, a pool child replaced)."""
    stack = module_stack()
    stack.start_web(wait=False)
    stack.start_worker(concurrency=2)
    stack.wait_started()
    wait_until(lambda: pool_ready_lines(stack) == 2, 120, what="both pool processes")
    stack.wait_start_up_sweeps()  # before any test stops Redis under them
    return stack


def pool_ready_lines(stack) -> int:
    return (stack.workdir / "worker1.log").read_text().count("pool process")


@redis_broker_only
def test_submit_while_redis_is_down_is_503_and_works_again_after(stack):
    assert stack.post("/api/v1/collections", json={"name": "outage"}).status_code == 201

    stack.redis.stop()
    response = stack.post("/api/v1/collections/outage/search", json={"query": "anything"})
    assert response.status_code == 503, response.text
    assert response.headers["Content-Type"] == "application/problem+json"
    assert response.json()["code"] == "service_unavailable"
    assert int(response.headers["Retry-After"]) > 0
    assert stack.get("/health/ready").status_code == 503
    # The refused job is recorded as failed, not left queued forever.
    refused = stack.get("/api/v1/jobs", params={"collection": "outage"}).json()["items"]
    assert [(j["status"], j["error"]["code"]) for j in refused] == [("failed", "service_unavailable")]

    stack.redis.start()
    wait_until(lambda: stack.get("/health/ready").status_code == 200, 30, what="readiness")
    job = stack.search("outage", query="anything", timeout=120)
    assert job["status"] == "succeeded"


def test_a_worker_killed_mid_ingest_is_recovered_by_another_with_beat_down(new_stack):
    """No beat runs, and the surviving worker started long before the kill
    (its start-up sweep is over): only its own sweep timer can re-send the job."""
    stack = new_stack(JOB_LEASE_SECONDS="4", RECOVERY_INTERVAL_SECONDS="2")
    stack.start_web(wait=False)
    workers = dict(zip([stack.workdir / "worker1.log", stack.workdir / "worker2.log"], stack.start_workers(2)))
    stack.wait_started()
    documents = large_corpus(200)
    submitted = stack.post("/api/v1/collections/crash/documents", json={"documents": documents}).json()

    def mid_way():
        job = stack.get(f"/api/v1/jobs/{submitted['id']}").json()
        return job if 0 < job["progress"]["processed"] < 100 else None

    wait_until(mid_way, 120, interval=0.05, what="ingest progress")
    [running_it] = [process for log, process in workers.items() if submitted["id"] in log.read_text()]
    stack.kill(running_it)  # SIGKILL to the whole worker: parent and pool child
    stalled = stack.get(f"/api/v1/jobs/{submitted['id']}").json()
    assert stalled["status"] == "running"
    assert stalled["progress"]["processed"] < stalled["progress"]["total"] == 200

    job = stack.wait_job(submitted["id"], timeout=180)
    assert job["status"] == "succeeded" and job["attempts"] == 2, job
    assert (job["result"]["documents"], job["result"]["chunks"], job["result"]["skipped_duplicates"]) == (200, 200, 0)
    collection = stack.get("/api/v1/collections/crash").json()
    assert (collection["documents"], collection["chunks"]) == (200, 200)
    # The index holds each chunk once: a document's own text finds it first,
    # and no hit appears twice.
    hits = stack.search("crash", query=documents[123]["text"], top_k=20)["result"]["hits"]
    assert hits[0]["document_id"] == "doc-123"
    assert len({h["chunk_id"] for h in hits}) == len(hits) == 20


def test_a_database_outage_is_503_on_every_route_and_passes(new_stack, private_postgres):
    stack = new_stack(database_url=private_postgres.url)
    stack.start_web()
    assert stack.post("/api/v1/collections", json={"name": "kept"}).status_code == 201

    private_postgres.stop()
    for method, path, body in [
        ("GET", "/api/v1/jobs", {}),
        ("GET", "/api/v1/collections/kept", {}),
        ("POST", "/api/v1/collections", {"json": {"name": "new"}}),
        ("POST", "/api/v1/collections/kept/search", {"json": {"query": "anything"}}),
        ("GET", "/api/v1/keys", {}),
    ]:
        response = stack.http.request(method, stack.url(path), timeout=30, **body)
        assert_problem(response, 503, "service_unavailable")
        assert int(response.headers["Retry-After"]) > 0
    assert stack.get("/health/ready").status_code == 503
    assert stack.get("/health").json()["components"]["database"]["status"] == "down"

    private_postgres.start()
    wait_until(lambda: stack.get("/health/ready").status_code == 200, 30, what="readiness")
    assert stack.get("/api/v1/collections/kept").status_code == 200
    assert stack.post("/api/v1/collections", json={"name": "after"}).status_code == 201


def pool_children(worker) -> set[int]:
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    return {int(pid) for pid in children}


def test_a_killed_pool_child_is_replaced_and_takes_work(stack):
    [worker] = stack.workers.values()
    log = stack.workdir / "worker1.log"
    children, ready = pool_children(worker), pool_ready_lines(stack)
    assert len(children) == 2
    victim = sorted(children)[0]

    os.kill(victim, signal.SIGKILL)
    # The replacement loads the model (longer than billiard's default 4 s
    # start-up allowance) and must then be kept, not killed and replaced.
    wait_until(lambda: pool_ready_lines(stack) == ready + 1, 120, what="the replacement pool process")
    time.sleep(2)
    assert len(pool_children(worker) - {victim}) == 2
    assert "Timed out waiting for UP message" not in log.read_text()
    assert stack.post("/api/v1/collections", json={"name": "after"}).status_code == 201
    for query in ("one", "two", "three", "four"):
        assert stack.search("after", query=query)["status"] == "succeeded"


def test_a_recovered_job_runs_ahead_of_a_200_job_backlog(new_stack):
    # The worker's own sweep (every second) re-sends the job should its
    # start-up recovery come before the lease ran out.
    stack = new_stack(JOB_LEASE_SECONDS="4", RECOVERY_INTERVAL_SECONDS="1")
    stack.start_web(wait=False)
    worker = stack.start_worker()
    stack.wait_started()
    big = stack.post("/api/v1/collections/backlog/documents", json={"documents": large_corpus(300)}).json()
    wait_until(
        lambda: stack.get(f"/api/v1/jobs/{big['id']}").json()["progress"]["processed"] > 0,
        120,
        interval=0.05,
        what="ingest progress",
    )

    def submit_small(i: int) -> None:  # the backlog, queued behind the running job
        small = {"documents": [{"id": f"small-{i}", "text": f"Small note number {i}."}]}
        assert stack.post("/api/v1/collections/backlog/documents", json=small).status_code == 202

    with ThreadPoolExecutor(4) as pool:
        list(pool.map(submit_small, range(200)))
    stack.kill(worker)
    stalled = stack.get(f"/api/v1/jobs/{big['id']}").json()
    assert stalled["status"] == "running" and stalled["progress"]["processed"] < 300, stalled
    stack.start_worker()  # the dead worker's lease runs out meanwhile; its start-up recovery re-sends the job

    assert stack.wait_job(big["id"], timeout=300)["status"] == "succeeded"
    still_queued = queued_jobs(stack)
    # Re-sent behind the backlog, the job would have finished last.
    assert still_queued >= 150, f"only {still_queued} of 200 backlog jobs were still queued"


def queued_jobs(stack) -> int:
    count, cursor = 0, None
    while True:
        params = {"status": "queued", "limit": 100, **({"cursor": cursor} if cursor else {})}
        page = stack.get("/api/v1/jobs", params=params).json()
        count += len(page["items"])
        cursor = page["next_cursor"]
        if not cursor:
            return count
