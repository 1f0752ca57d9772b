"""A collection's documents end to end through the API: list, read, replace,
delete one, delete the collection; and hnsw collections. (A deletion seen by
every worker process: tests/integration/test_documents.py.)"""

from __future__ import annotations

import hashlib

import pytest

from tests.integration.corpora import TOPICS, unique
from tests.integration.problems import assert_problem

PIPELINES = ("dense", "keyword", "hybrid", "rerank")


def ingest(api, name, documents, **kwargs) -> dict:
    job = api.ingest(name, documents, **kwargs)
    assert job["status"] == "succeeded", job
    return job["result"]


def run(api, response) -> dict:
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"])
    assert job["status"] == "succeeded", job
    return job


def hit_ids(api, name, query, pipeline, top_k=10) -> list[str]:
    job = api.search(name, query=query, pipeline=pipeline, top_k=top_k)
    assert job["status"] == "succeeded", job
    return [hit["document_id"] for hit in job["result"]["hits"]]


@pytest.fixture
def topics(api):
    name = unique("docs")
    ingest(
        api,
        name,
        [
            {"id": doc_id, "text": text, "metadata": {"topic": doc_id, "even": i % 2 == 0, "rank": i}}
            for i, (doc_id, text) in enumerate(TOPICS)
        ],
    )
    return name


def test_documents_are_listed_paged_filtered_and_read(api, topics):
    first = api.get(f"/api/v1/collections/{topics}/documents", params={"limit": 15}).json()
    second = api.get(f"/api/v1/collections/{topics}/documents", params={"cursor": first["next_cursor"]}).json()
    listed = [d["id"] for d in first["items"] + second["items"]]
    assert sorted(listed) == sorted(doc_id for doc_id, _ in TOPICS) and second["next_cursor"] is None

    by_topic = api.get(f"/api/v1/collections/{topics}/documents", params={"metadata": '{"topic": ["bees", "mars"]}'})
    assert sorted(d["id"] for d in by_topic.json()["items"]) == ["bees", "mars"]
    by_number = api.get(f"/api/v1/collections/{topics}/documents", params={"metadata": '{"rank": 3}'})
    assert [d["id"] for d in by_number.json()["items"]] == [TOPICS[3][0]]
    bad = api.get(f"/api/v1/collections/{topics}/documents", params={"metadata": "[1]"})
    assert_problem(bad, 422, "validation_error")

    document = api.get(f"/api/v1/collections/{topics}/documents/bees").json()
    text = dict(TOPICS)["bees"]
    assert document["id"] == "bees" and document["metadata"]["topic"] == "bees"
    assert document["chunks"] == 1 and document["status"] == "ready"
    assert document["content_hash"] == hashlib.sha256(text.encode()).hexdigest()
    assert document["created_at"].endswith(("Z", "+00:00"))
    assert_problem(api.get(f"/api/v1/collections/{topics}/documents/nope"), 404, "not_found")
    assert_problem(api.get("/api/v1/collections/no-such-coll/documents"), 404, "not_found")


def test_delete_removes_a_document_from_every_pipeline(api, topics):
    job = run(api, api.delete(f"/api/v1/collections/{topics}/documents/bees"))
    assert job["type"] == "delete_document" and job["result"]["deleted"] is True
    for pipeline in PIPELINES:
        assert "bees" not in hit_ids(api, topics, "honey bees collect nectar", pipeline, top_k=20), pipeline
    assert_problem(api.get(f"/api/v1/collections/{topics}/documents/bees"), 404, "not_found")
    listed = api.get(f"/api/v1/collections/{topics}/documents", params={"limit": 100}).json()["items"]
    assert "bees" not in [d["id"] for d in listed] and len(listed) == len(TOPICS) - 1
    assert_problem(api.delete(f"/api/v1/collections/{topics}/documents/bees"), 404, "not_found")


def test_reupload_deduplicates_and_a_changed_text_replaces_the_old_version(api, topics):
    again = ingest(api, topics, [{"id": "bees", "text": dict(TOPICS)["bees"], "metadata": {"topic": "bees"}}])
    assert again["skipped_duplicates"] == 1 and again["chunks"] == 0
    new_text = "Bumblebees are fuzzy pollinators that nest in the ground and buzz loudly."
    replaced = ingest(api, topics, [{"id": "bees", "text": new_text, "metadata": {"topic": "bees", "v": 2}}])
    assert replaced["documents"] == 1
    document = api.get(f"/api/v1/collections/{topics}/documents/bees").json()
    assert document["metadata"]["v"] == 2
    assert document["content_hash"] == hashlib.sha256(new_text.encode()).hexdigest()
    job = api.search(topics, query="honey nectar hive", pipeline="keyword", top_k=20)
    texts = [hit["text"] for hit in job["result"]["hits"] if hit["document_id"] == "bees"]
    assert dict(TOPICS)["bees"] not in texts
    assert hit_ids(api, topics, "fuzzy pollinators nesting in the ground", "hybrid", top_k=1) == ["bees"]


def test_deleting_a_collection_removes_it_and_frees_its_name(api, topics):
    job = run(api, api.delete(f"/api/v1/collections/{topics}"))
    assert job["type"] == "delete_collection" and job["collection"] == topics
    assert job["result"]["documents"] == len(TOPICS)
    assert_problem(api.get(f"/api/v1/collections/{topics}"), 404, "not_found")
    response = api.post(f"/api/v1/collections/{topics}/search", json={"query": "bees"})
    assert_problem(response, 404, "not_found")
    assert_problem(api.delete(f"/api/v1/collections/{topics}"), 404, "not_found")
    # The name is free again, and the new collection starts empty.
    ingest(api, topics, [{"id": "only", "text": "A single new document about kites."}])
    assert hit_ids(api, topics, "honey bees", "keyword") == []
    assert api.get(f"/api/v1/collections/{topics}").json()["documents"] == 1


def test_an_hnsw_collection_matches_flat_and_forgets_deleted_documents(api):
    flat, hnsw = unique("flat"), unique("hnsw")
    assert api.post("/api/v1/collections", json={"name": hnsw, "index_type": "hnsw"}).status_code == 201
    documents = [{"id": doc_id, "text": text} for doc_id, text in TOPICS]
    ingest(api, flat, documents)
    ingest(api, hnsw, documents)
    assert api.get(f"/api/v1/collections/{hnsw}").json()["index_type"] == "hnsw"
    for query in ("the red planet", "folding paper", "a digital currency"):
        assert hit_ids(api, hnsw, query, "dense", 1) == hit_ids(api, flat, query, "dense", 1)
    run(api, api.delete(f"/api/v1/collections/{hnsw}/documents/mars"))
    assert "mars" not in hit_ids(api, hnsw, "the red planet", "dense", top_k=20)
    bad = api.post("/api/v1/collections", json={"name": unique("x"), "index_type": "ivf"})
    assert_problem(bad, 422, "validation_error")
