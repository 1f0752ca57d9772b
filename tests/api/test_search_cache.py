"""The search result cache: a repeated search is answered at submit, without
a worker, until a write moves the collection's generation; identical
searches running at once are computed once, the later ones following the
first without holding a worker."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.integration.corpora import TOPICS, unique


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
