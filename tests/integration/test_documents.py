"""A deleted document is gone from every worker process's index at once (the
documents API itself: tests/api/test_documents.py)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.corpora import TOPICS, unique

pytestmark = pytest.mark.integration


def ingest(service, name, documents, **kwargs) -> dict:
    job = service.ingest(name, documents, **kwargs)
    assert job["status"] == "succeeded", job
    return job["result"]


def run(service, response) -> dict:
    assert response.status_code == 202, response.text
    job = service.wait_job(response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def hit_ids(service, name, query, pipeline, top_k=10) -> list[str]:
    job = service.search(name, query=query, pipeline=pipeline, top_k=top_k)
    assert job["status"] == "succeeded", job
    return [hit["document_id"] for hit in job["result"]["hits"]]


@pytest.fixture
def topics(service):
    name = unique("docs")
    ingest(
        service,
        name,
        [
            {"id": doc_id, "text": text, "metadata": {"topic": doc_id, "even": i % 2 == 0, "rank": i}}
            for i, (doc_id, text) in enumerate(TOPICS)
        ],
    )
    return name


def test_a_deleted_document_is_gone_from_every_worker_process(service, topics):
    query = "honey bees collect nectar"
    warm_both_pool_processes(service, topics, query)
    job = run(service, service.delete(f"/api/v1/collections/{topics}/documents/bees"))
    assert job["type"] == "delete_document" and job["result"]["deleted"] is True
    # The shared worker runs two pool processes; searches sent together reach
    # both, and each must already serve the new index generation. (Each query
    # differs a little, so none is answered from the result cache.)
    with ThreadPoolExecutor(6) as pool:
        assert not any(
            "bees" in ids for ids in pool.map(lambda i: hit_ids(service, topics, f"{query} {i}", "dense"), range(6))
        )


def warm_both_pool_processes(service, name, query):
    with ThreadPoolExecutor(6) as pool:
        assert all(
            "bees" in ids for ids in pool.map(lambda i: hit_ids(service, name, f"{query} {i}", "dense"), range(6))
        )
