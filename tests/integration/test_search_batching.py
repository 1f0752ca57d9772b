"""Micro-batched search through the real service: searches that waited
together come back exactly as they do one by one, whatever their collection,
pipeline and filters; and a worker killed mid-batch loses none of them."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.processes import wait_until
from tests.integration.corpora import TOPICS, large_corpus

pytestmark = pytest.mark.integration

SEARCHES = [
    ("topics", {"query": "molten rock and ash", "pipeline": "dense", "top_k": 3}),
    ("topics", {"query": "honey from the hive", "pipeline": "keyword", "top_k": 2}),
    ("topics", {"query": "birds", "pipeline": "hybrid", "top_k": 5, "filters": {"topic": ["penguin", "origami"]}}),
    ("topics", {"query": "a string instrument", "pipeline": "rerank", "top_k": 3}),
    ("words", {"query": "molten rock and ash", "pipeline": "dense", "top_k": 3}),
    ("words", {"query": "school family company", "pipeline": "hybrid", "top_k": 4}),
]


def _hits(job: dict) -> list[tuple[str, str]]:
    return [(hit["document_id"], hit["chunk_id"]) for hit in job["result"]["hits"]]


def _batch_sizes(stack) -> tuple[float, float]:
    """(jobs, batches) the search workers ran, from /metrics."""
    samples = dict(
        line.rsplit(" ", 1)
        for line in stack.get("/metrics").text.splitlines()
        if line.startswith("quarry_job_batch_size_") and 'type="search"' in line and "_bucket" not in line
    )
    return float(samples.get('quarry_job_batch_size_sum{type="search"}', 0)), float(
        samples.get('quarry_job_batch_size_count{type="search"}', 0)
    )


def _submit_all(stack, searches) -> list[str]:
    def submit(search):
        collection, body = search
        response = stack.post(f"/api/v1/collections/{collection}/search", json=body)
        assert response.status_code == 202, response.text
        return response.json()["id"]

    with ThreadPoolExecutor(8) as pool:
        return list(pool.map(submit, searches))


def test_batched_searches_match_one_by_one_and_survive_a_killed_worker(new_stack, tiny_cross_encoder):
    stack = new_stack(
        SEARCH_CACHE_TTL_SECONDS="0",  # every search computed, none answered from the cache
        JOB_LEASE_SECONDS="4",
        RECOVERY_INTERVAL_SECONDS="1",
        RERANK_MODEL=str(tiny_cross_encoder),
        RERANK_CANDIDATES="50",
    )
    stack.start_web(wait=False)
    stack.start_beat(wait=False)
    worker = stack.start_worker()
    stack.wait_started()
    stack.ingest("topics", [{"id": name, "text": text, "metadata": {"topic": name}} for name, text in TOPICS])
    stack.ingest("words", large_corpus(100))
    alone = [stack.search(collection, **body) for collection, body in SEARCHES]
    assert _batch_sizes(stack) == (len(SEARCHES), len(SEARCHES))  # one by one: batches of one

    # Everything waits while the worker takes no searches; then it takes them in batches.
    stack.pause_queue("search")
    ids = _submit_all(stack, SEARCHES * 3)
    stack.resume_queue("search")
    together = [stack.wait_job(job_id) for job_id in ids]
    assert [job["status"] for job in together] == ["succeeded"] * len(ids)
    assert [_hits(job) for job in together] == [_hits(job) for job in alone] * 3
    jobs_run, batches = _batch_sizes(stack)
    assert jobs_run == len(SEARCHES) * 4 and batches < len(SEARCHES) * 4

    # A slow batch (4 reranked searches) whose worker is killed midway. (The
    # recovered jobs run one by one: each more costs the test a rerank.)
    stack.pause_queue("search")
    slow = [("words", {"query": f"people and places {i}", "pipeline": "rerank", "top_k": 5}) for i in range(4)]
    ids = _submit_all(stack, slow)
    stack.resume_queue("search")

    def running() -> list[dict]:
        items = stack.get("/api/v1/jobs", params={"status": "running", "collection": "words", "limit": 100}).json()
        return items["items"] if len(items["items"]) > 1 else []

    in_batch = {job["id"] for job in wait_until(running, 120, interval=0.05, what="a running batch")}
    stack.kill(worker)
    stack.start_worker()  # the dead worker's leases run out while it starts; beat re-sends the jobs
    finished = [stack.wait_job(job_id, timeout=180) for job_id in ids]
    assert [job["status"] for job in finished] == ["succeeded"] * len(ids)
    assert all(job["attempts"] == 2 for job in finished if job["id"] in in_batch)
    assert all(len(job["result"]["hits"]) == 5 for job in finished)


def test_a_search_submitted_during_a_large_ingest_does_not_wait_for_it(service):
    """Searches and ingests have queues of their own, and a pool process of
    the shared stack's two stays free for searches while one ingests."""
    name = f"busy-{time.time_ns()}"
    service.ingest(name, [{"id": topic, "text": text} for topic, text in TOPICS[:5]])
    response = service.post(f"/api/v1/collections/{name}-big/documents", json={"documents": large_corpus(200)})
    assert response.status_code == 202
    ingest_id = response.json()["id"]
    wait_until(lambda: service.get(f"/api/v1/jobs/{ingest_id}").json()["status"] == "running", 60, interval=0.05)
    search = service.search(name, query="molten rock", top_k=1)
    ingest = service.wait_job(ingest_id, timeout=300)
    assert search["status"] == "succeeded" and search["result"]["hits"][0]["document_id"] == "volcano"
    assert ingest["status"] == "succeeded"
    assert search["finished_at"] < ingest["finished_at"]
