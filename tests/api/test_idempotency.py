"""Retry-safe submits with `Idempotency-Key` (per API key, 24 h)."""

from __future__ import annotations

import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest

from tests.api.inprocess import TENANT
from tests.integration.corpora import TOPICS, unique
from tests.integration.problems import assert_problem


@pytest.fixture(scope="module")
def corpus(api):
    name = unique("idem")
    job = api.ingest(name, [{"id": doc_id, "text": text} for doc_id, text in TOPICS[:5]])
    assert job["status"] == "succeeded", job
    return name


def jobs_of(api, name) -> list[str]:
    return [job["id"] for job in api.get("/api/v1/jobs", params={"collection": name, "limit": 100}).json()["items"]]


def test_a_repeated_submit_returns_the_original_job_and_a_different_body_is_409(api, corpus):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    before = len(jobs_of(api, corpus))
    first = api.post(f"/api/v1/collections/{corpus}/search", json={"query": "honey", "top_k": 3}, headers=key)
    assert first.status_code == 202 and "Idempotent-Replayed" not in first.headers
    # The same request, its JSON written differently: the same job, 200.
    again = api.post(
        f"/api/v1/collections/{corpus}/search",
        data='{ "top_k": 3,  "query": "honey" }',
        headers={**key, "Content-Type": "application/json"},
    )
    assert again.status_code == 200 and again.headers["Idempotent-Replayed"] == "true"
    assert again.json()["id"] == first.json()["id"]
    assert again.headers["Location"] == first.headers["Location"]
    assert len(jobs_of(api, corpus)) == before + 1
    other = api.post(f"/api/v1/collections/{corpus}/search", json={"query": "lava", "top_k": 3}, headers=key)
    assert_problem(other, 409, "conflict")
    elsewhere = api.post(f"/api/v1/collections/{corpus}/search/batch", json={"queries": ["honey"]}, headers=key)
    assert_problem(elsewhere, 409, "conflict")


def test_two_concurrent_first_requests_create_one_job(api, corpus):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    body = {"documents": [{"id": "concurrent", "text": "Kites fly on windy beaches in the spring."}]}

    def submit(_):
        return api.post(f"/api/v1/collections/{corpus}/documents", json=body, headers=key)

    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(submit, range(4)))
    assert sorted(a.status_code for a in answers) == [200, 200, 200, 202]
    assert len({a.json()["id"] for a in answers}) == 1
    ingests = [j for j in api.get("/api/v1/jobs", params={"collection": corpus, "type": "ingest"}).json()["items"]]
    assert sum(1 for j in ingests if j["id"] == answers[0].json()["id"]) == 1
    assert api.wait_job(answers[0].json()["id"])["status"] == "succeeded"


def test_a_repeated_file_upload_is_ingested_once(api, corpus):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    files = [("files", ("kayak.txt", b"Kayaks are paddled with a double-bladed paddle.", "text/plain"))]
    first = api.post(f"/api/v1/collections/{corpus}/documents", files=files, headers=key)
    again = api.post(f"/api/v1/collections/{corpus}/documents", files=files, headers=key)
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json()["id"] == first.json()["id"]
    changed = [("files", ("kayak.txt", b"Canoes use a single-bladed paddle.", "text/plain"))]
    assert_problem(api.post(f"/api/v1/collections/{corpus}/documents", files=changed, headers=key), 409, "conflict")
    assert api.wait_job(first.json()["id"])["result"]["documents"] == 1


def test_keys_are_per_api_key_and_must_be_printable(api, corpus):
    key = {"Idempotency-Key": str(uuid.uuid4())}
    mine = api.post(f"/api/v1/collections/{corpus}/search", json={"query": "chess"}, headers=key)
    other_key = api.create_key(TENANT, name="idem-other")  # same tenant, another key
    theirs = api.http.post(
        api.url(f"/api/v1/collections/{corpus}/search"),
        json={"query": "chess"},
        headers={**key, "Authorization": f"Bearer {other_key}"},
        timeout=30,
    )
    assert mine.status_code == theirs.status_code == 202 and mine.json()["id"] != theirs.json()["id"]
    bad = api.post(
        f"/api/v1/collections/{corpus}/search", json={"query": "chess"}, headers={"Idempotency-Key": "x" * 300}
    )
    assert_problem(bad, 422, "validation_error")
