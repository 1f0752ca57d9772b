"""A collection's documents end to end over HTTP: list, read, replace,
delete one, delete the collection; and hnsw collections."""

from __future__ import annotations

import hashlib
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.corpora import TOPICS, unique
from tests.integration.problems import assert_problem

pytestmark = pytest.mark.integration

PIPELINES = ("dense", "keyword", "hybrid", "rerank")


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
    ingest(service, name, [
        {"id": doc_id, "text": text, "metadata": {"topic": doc_id, "even": i % 2 == 0, "rank": i}}
        for i, (doc_id, text) in enumerate(TOPICS)
    ])
    return name


def test_documents_are_listed_paged_filtered_and_read(service, topics):
    first = service.get(f"/api/v1/collections/{topics}/documents", params={"limit": 15}).json()
    second = service.get(f"/api/v1/collections/{topics}/documents", params={"cursor": first["next_cursor"]}).json()
    listed = [d["id"] for d in first["items"] + second["items"]]
    assert sorted(listed) == sorted(doc_id for doc_id, _ in TOPICS) and second["next_cursor"] is None

    by_topic = service.get(f"/api/v1/collections/{topics}/documents", params={"metadata": '{"topic": ["bees", "mars"]}'})
    assert sorted(d["id"] for d in by_topic.json()["items"]) == ["bees", "mars"]
    by_number = service.get(f"/api/v1/collections/{topics}/documents", params={"metadata": '{"rank": 3}'})
    assert [d["id"] for d in by_number.json()["items"]] == [TOPICS[3][0]]
    bad = service.get(f"/api/v1/collections/{topics}/documents", params={"metadata": "[1]"})
    assert_problem(bad, 422, "validation_error")

    document = service.get(f"/api/v1/collections/{topics}/documents/bees").json()
    text = dict(TOPICS)["bees"]
    assert document["id"] == "bees" and document["metadata"]["topic"] == "bees"
    assert document["chunks"] == 1 and document["status"] == "ready"
    assert document["content_hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert document["created_at"].endswith(("Z", "+00:00"))
    assert_problem(service.get(f"/api/v1/collections/{topics}/documents/nope"), 404, "not_found")
    assert_problem(service.get("/api/v1/collections/no-such-coll/documents"), 404, "not_found")


def test_delete_removes_a_document_from_every_pipeline_and_every_worker_process(service, topics):
    query = "honey bees collect nectar"
    warm_both_pool_processes(service, topics, query)
    job = run(service, service.delete(f"/api/v1/collections/{topics}/documents/bees"))
    assert job["type"] == "delete_document" and job["result"]["deleted"] is True
    for pipeline in PIPELINES:
        assert "bees" not in hit_ids(service, topics, query, pipeline, top_k=20), pipeline
    # The shared worker runs two pool processes; searches sent together reach
    # both, and each must already serve the new index generation. (Each query
    # differs a little, so none is answered from the result cache.)
    with ThreadPoolExecutor(6) as pool:
        assert not any("bees" in ids for ids in pool.map(lambda i: hit_ids(service, topics, f"{query} {i}", "dense"), range(6)))
    assert_problem(service.get(f"/api/v1/collections/{topics}/documents/bees"), 404, "not_found")
    listed = service.get(f"/api/v1/collections/{topics}/documents", params={"limit": 100}).json()["items"]
    assert "bees" not in [d["id"] for d in listed] and len(listed) == len(TOPICS) - 1
    assert_problem(service.delete(f"/api/v1/collections/{topics}/documents/bees"), 404, "not_found")


def warm_both_pool_processes(service, name, query):
    with ThreadPoolExecutor(6) as pool:
        assert all("bees" in ids for ids in pool.map(lambda i: hit_ids(service, name, f"{query} {i}", "dense"), range(6)))


def test_reupload_deduplicates_and_a_changed_text_replaces_the_old_version(service, topics):
    again = ingest(service, topics, [{"id": "bees", "text": dict(TOPICS)["bees"], "metadata": {"topic": "bees"}}])
    assert again["skipped_duplicates"] == 1 and again["chunks"] == 0
    new_text = "Bumblebees are fuzzy pollinators that nest in the ground and buzz loudly."
    replaced = ingest(service, topics, [{"id": "bees", "text": new_text, "metadata": {"topic": "bees", "v": 2}}])
    assert replaced["documents"] == 1
    document = service.get(f"/api/v1/collections/{topics}/documents/bees").json()
    assert document["metadata"]["v"] == 2
    assert document["content_hash"] == hashlib.sha256(new_text.encode()).hexdigest()
    job = service.search(topics, query="honey nectar hive", pipeline="keyword", top_k=20)
    texts = [hit["text"] for hit in job["result"]["hits"] if hit["document_id"] == "bees"]
    assert dict(TOPICS)["bees"] not in texts
    assert hit_ids(service, topics, "fuzzy pollinators nesting in the ground", "hybrid", top_k=1) == ["bees"]


def test_deleting_a_collection_removes_it_and_frees_its_name(service, topics):
    job = run(service, service.delete(f"/api/v1/collections/{topics}"))
    assert job["type"] == "delete_collection" and job["collection"] == topics
    assert job["result"]["documents"] == len(TOPICS)
    assert_problem(service.get(f"/api/v1/collections/{topics}"), 404, "not_found")
    response = service.post(f"/api/v1/collections/{topics}/search", json={"query": "bees"})
    assert_problem(response, 404, "not_found")
    assert_problem(service.delete(f"/api/v1/collections/{topics}"), 404, "not_found")
    # The name is free again, and the new collection starts empty.
    ingest(service, topics, [{"id": "only", "text": "A single new document about kites."}])
    assert hit_ids(service, topics, "honey bees", "keyword") == []
    assert service.get(f"/api/v1/collections/{topics}").json()["documents"] == 1


def test_an_hnsw_collection_matches_flat_and_forgets_deleted_documents(service):
    flat, hnsw = unique("flat"), unique("hnsw")
    assert service.post("/api/v1/collections", json={"name": hnsw, "index_type": "hnsw"}).status_code == 201
    documents = [{"id": doc_id, "text": text} for doc_id, text in TOPICS]
    ingest(service, flat, documents)
    ingest(service, hnsw, documents)
    assert service.get(f"/api/v1/collections/{hnsw}").json()["index_type"] == "hnsw"
    for query in ("the red planet", "folding paper", "a digital currency"):
        assert hit_ids(service, hnsw, query, "dense", 1) == hit_ids(service, flat, query, "dense", 1)
    run(service, service.delete(f"/api/v1/collections/{hnsw}/documents/mars"))
    assert "mars" not in hit_ids(service, hnsw, "the red planet", "dense", top_k=20)
    bad = service.post("/api/v1/collections", json={"name": unique("x"), "index_type": "ivf"})
    assert_problem(bad, 422, "validation_error")
