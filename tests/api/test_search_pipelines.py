"""The pipelines through the service: keyword, dense, hybrid and rerank,
filters that reach deep into the ranking, per-document collapse, batches,
extractive answers, and the pipeline listing."""

from __future__ import annotations

import pytest

from tests.integration.corpora import TOPICS, unique
from tests.integration.problems import assert_problem

# Only this document holds the made-up word; the decoys hold words built of
# the same pieces, so the query's embedding sits closer to them.
RARE = (
    "rare",
    "The municipal water report lists pump repairs, staffing and the zorblaxian filter budget for next year.",
)
DECOYS = [
    ("decoy-1", "Zorblaxan zorblexian."),
    ("decoy-2", "Zorblaxia, zorblexa, zorblaxan."),
    ("decoy-3", "Zorbla xian zorb laxian."),
]
# Shares no word with its paraphrase query below.
PARAPHRASE_QUERY = "aquatic avians unable to take wing"
# A long document about tides: many chunks that all match a tides query.
LONG_TIDES = (
    "long-tides",
    " ".join(
        f"Section {i}: ocean tides rise and fall as the moon's gravity pulls the sea, "
        f"and coastal tide tables record high water and low water twice a day."
        for i in range(60)
    ),
)
# The filter's only match: about bread, yet it mentions the sea once so BM25
# scores it, far below sixty documents about tides.
NEEDLE = ("needle", "Bakers knead dough with yeast; this bakery sits by the sea.", {"group": "needle"})
TIDE_FILLER = [
    (
        f"tide-{i}",
        f"Tide note {i}: the sea rises at high tide and falls at low tide as the moon pulls the ocean.",
        {"group": "filler"},
    )
    for i in range(60)
]
PIPELINES = ("dense", "keyword", "hybrid", "rerank")


@pytest.fixture(scope="module")
def corpus(api):
    name = unique("pipes")
    documents = [
        {"id": doc_id, "text": text, "metadata": {"topic": doc_id}}
        for doc_id, text in [*TOPICS, RARE, *DECOYS, LONG_TIDES]
    ] + [{"id": doc_id, "text": text, "metadata": meta} for doc_id, text, meta in [NEEDLE, *TIDE_FILLER]]
    job = api.ingest(name, documents, timeout=300)
    assert job["status"] == "succeeded" and not job["result"]["failed"], job
    return name


def search(api, collection, **body) -> dict:
    job = api.search(collection, **body)
    assert job["status"] == "succeeded", job
    return job["result"]


def ids(result) -> list[str]:
    return [hit["document_id"] for hit in result["hits"]]


def test_keyword_finds_an_exact_rare_term_that_dense_misses(api, corpus):
    assert ids(search(api, corpus, query="zorblaxian", pipeline="keyword")) == ["rare"]
    dense = ids(search(api, corpus, query="zorblaxian", pipeline="dense", top_k=3))
    assert dense[0] != "rare"


def test_dense_finds_a_paraphrase_that_keyword_misses(api, corpus):
    assert ids(search(api, corpus, query=PARAPHRASE_QUERY, pipeline="dense", top_k=3))[0] == "penguin"
    assert "penguin" not in ids(search(api, corpus, query=PARAPHRASE_QUERY, pipeline="keyword", top_k=20))


def test_hybrid_returns_both_and_is_deterministic(api, corpus):
    query = f"zorblaxian {PARAPHRASE_QUERY}"
    first = search(api, corpus, query=query, top_k=5)
    assert first["pipeline"] == "hybrid"
    assert {"rare", "penguin"} <= set(ids(first))
    # Computed again (another top_k is another cache key): the same order.
    again = search(api, corpus, query=query, top_k=6)
    assert again["cached"] is False and again["hits"][:5] == first["hits"]


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_a_filter_whose_only_match_ranks_below_50_still_returns_it(api, corpus, pipeline):
    query = "the sea at high tide"
    unfiltered = ids(search(api, corpus, query=query, pipeline=pipeline, top_k=50))
    assert "needle" not in unfiltered  # it really ranks below 50
    filtered = search(api, corpus, query=query, pipeline=pipeline, top_k=10, filters={"group": "needle"})
    assert ids(filtered) == ["needle"]
    by_id = search(api, corpus, query=query, pipeline=pipeline, top_k=10, filters={"document_id": ["needle", "bees"]})
    assert set(ids(by_id)) <= {"needle", "bees"} and "needle" in ids(by_id)


@pytest.mark.parametrize("pipeline", PIPELINES)
def test_collapse_by_document_never_returns_a_document_twice(api, corpus, pipeline):
    query = "coastal tide tables record high water and low water"
    chunks = ids(search(api, corpus, query=query, pipeline=pipeline, top_k=10))
    assert len(set(chunks)) < len(chunks)  # without collapse, the long document crowds the list
    collapsed = search(api, corpus, query=query, pipeline=pipeline, top_k=10, collapse="document")
    assert len(ids(collapsed)) == 10 and len(set(ids(collapsed))) == 10
    assert ids(collapsed)[0] == chunks[0]  # each document at its best chunk's rank


def test_batch_search_returns_one_result_per_query_in_order(api, corpus):
    queries = ["honey from flowers", "zorblaxian", "the red planet", "a string instrument played with a bow"]
    response = api.post(f"/api/v1/collections/{corpus}/search/batch", json={"queries": queries, "top_k": 3})
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"])
    assert job["status"] == "succeeded" and job["type"] == "search_batch", job
    results = job["result"]["results"]
    assert [r["query"] for r in results] == queries
    assert [r["hits"][0]["document_id"] for r in results] == ["bees", "rare", "mars", "violin"]
    # Batching changes no result: each query alone gives the same hits.
    assert search(api, corpus, query=queries[2], top_k=3)["hits"] == results[2]["hits"]


def test_batch_search_validates_its_queries(api, corpus):
    for body in ({"queries": []}, {"queries": ["ok"] * 101}, {"queries": ["ok", "  "]}, {"queries": "one"}):
        response = api.post(f"/api/v1/collections/{corpus}/search/batch", json=body)
        assert_problem(response, 422, "validation_error")


def test_include_answer_cites_sentences_from_the_hits(api, corpus):
    result = search(api, corpus, query="what do vaccines train?", top_k=3, include_answer=True)
    answer = result["answer"]
    assert "immune system" in answer["text"]
    hits = {(h["document_id"], h["chunk_id"]): h["text"] for h in result["hits"]}
    for citation in answer["citations"]:
        assert citation["text"] in hits[(citation["document_id"], citation["chunk_id"])]


def test_rerank_reorders_the_hybrid_candidates(api, corpus):
    """The tier's cross-encoder is the untrained one of tests/conftest.py:
    this checks the mechanism (candidates re-scored, best first), not quality."""
    result = search(api, corpus, query="honey bees and flowers", pipeline="rerank", top_k=5)
    assert result["pipeline"] == "rerank" and len(result["hits"]) == 5
    scores = [hit["score"] for hit in result["hits"]]
    assert scores == sorted(scores, reverse=True)
    candidates = ids(search(api, corpus, query="honey bees and flowers", pipeline="hybrid", top_k=50))
    assert set(ids(result)) <= set(candidates)


def test_pipelines_list_their_status_and_recent_timings(api, corpus):
    search(api, corpus, query="glaciers carve valleys", pipeline="keyword")
    listed = api.get("/api/v1/pipelines").json()
    assert [p["name"] for p in listed] == list(PIPELINES)
    by_name = {p["name"]: p for p in listed}
    assert by_name["hybrid"]["default"] is True
    assert all(p["status"] == "healthy" for p in listed)  # this app has a RERANK_MODEL
    keyword = api.get("/api/v1/pipelines/keyword").json()
    assert keyword["stats"]["searches"] >= 1 and keyword["stats"]["p95_took_ms"] >= keyword["stats"]["p50_took_ms"] > 0
    assert_problem(api.get("/api/v1/pipelines/nope"), 404, "not_found")


def test_rerank_without_a_model_is_503_pipeline_unavailable(app_with):
    client = app_with(rerank_model="")  # refused at submit: no worker is involved
    name = unique("norerank")
    assert client.post("/api/v1/collections", json={"name": name}).status_code == 201
    response = client.post(f"/api/v1/collections/{name}/search", json={"query": "x", "pipeline": "rerank"})
    assert_problem(response, 503, "pipeline_unavailable")
    assert int(response.headers["Retry-After"]) > 0
    assert client.get("/api/v1/pipelines/rerank").json()["status"] == "unavailable"
    assert client.post(f"/api/v1/collections/{name}/search", json={"query": "x"}).status_code == 202
