"""Large JSON answers are gzipped for clients that accept it, without
breaking conditional polls; CORS stays off unless configured."""

from __future__ import annotations

import gzip

import pytest

from tests.integration.corpora import TOPICS, unique


@pytest.fixture(scope="module")
def big_job(api):
    """A finished search whose JSON (20 hits with their text) is several KB."""
    name = unique("gzip")
    api.ingest(name, [{"id": i, "text": t} for i, t in TOPICS])
    job = api.search(name, query="how do plants make energy", top_k=20)
    assert job["status"] == "succeeded" and len(job["result"]["hits"]) == 20
    return job


def _raw_get(api, path: str, **headers):
    """A GET whose body is left as sent (the in-process client decodes nothing)."""
    response = api.get(path, headers=headers)
    response.raw_body = response.content
    return response


def test_a_large_job_answer_is_gzipped_for_a_client_that_accepts_it(api, big_job):
    path = f"/api/v1/jobs/{big_job['id']}"
    zipped = _raw_get(api, path, **{"Accept-Encoding": "gzip"})
    plain = _raw_get(api, path, **{"Accept-Encoding": "identity"})
    assert zipped.headers["Content-Encoding"] == "gzip"
    assert "Accept-Encoding" in zipped.headers["Vary"]
    assert "Content-Encoding" not in plain.headers
    assert gzip.decompress(zipped.raw_body) == plain.raw_body
    assert len(zipped.raw_body) < len(plain.raw_body) / 2


def test_a_small_answer_is_sent_as_is(api):
    response = _raw_get(api, "/health/live", **{"Accept-Encoding": "gzip"})
    assert response.status_code == 200 and "Content-Encoding" not in response.headers


def test_a_gzipped_answers_etag_still_gets_a_free_304(api, big_job):
    path = f"/api/v1/jobs/{big_job['id']}"
    for _attempt in range(3):  # a fixed window may roll over mid-sequence: try again
        first = _raw_get(api, path, **{"Accept-Encoding": "gzip"})
        poll = _raw_get(api, path, **{"Accept-Encoding": "gzip", "If-None-Match": first.headers["ETag"]})
        if first.headers["X-RateLimit-Reset"] == poll.headers["X-RateLimit-Reset"]:
            break
    assert first.headers["Content-Encoding"] == "gzip"
    assert poll.status_code == 304 and poll.raw_body == b""
    assert poll.headers["X-RateLimit-Remaining"] == first.headers["X-RateLimit-Remaining"]


def test_cors_is_off_unless_origins_are_configured(api):
    preflight = api.http.options(
        api.url("/api/v1/collections"),
        headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST"},
    )
    answer = api.get("/api/v1/collections", headers={"Origin": "https://app.example"})
    assert answer.status_code == 200
    assert "Access-Control-Allow-Origin" not in preflight.headers
    assert "Access-Control-Allow-Origin" not in answer.headers
