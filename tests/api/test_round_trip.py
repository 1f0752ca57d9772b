"""The whole api over HTTP: gunicorn, a real Redis, a real Celery worker,
the real embedding model and FAISS."""

from __future__ import annotations

import time
from datetime import datetime

import pytest

from tests.api.inprocess import TENANT
from tests.integration.corpora import TOPICS, unique


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value)


@pytest.fixture(scope="module")
def corpus(api):
    """A collection with the 20 topic documents, ingested over HTTP."""
    name = unique("topics")
    response = api.post(
        f"/api/v1/collections/{name}/documents",
        json={"documents": [{"id": i, "text": t, "metadata": {"topic": i}} for i, t in TOPICS]},
    )
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"])
    return name, job


def test_ingest_of_20_documents_succeeds_with_progress_at_total(api, corpus):
    name, job = corpus
    assert job["status"] == "succeeded", job
    assert job["type"] == "ingest" and job["collection"] == name
    assert job["progress"] == {"processed": 20, "total": 20, "percent": 100.0}
    assert job["result"]["documents"] == 20 and job["result"]["chunks"] == 20
    assert job["result"]["failed"] == [] and job["result"]["skipped_duplicates"] == 0
    assert job["error"] is None and job["started_at"] and job["finished_at"]

    collection = api.get(f"/api/v1/collections/{name}").json()
    assert (collection["documents"], collection["chunks"]) == (20, 20)
    assert collection["generation"] >= 1


@pytest.mark.parametrize(
    "query,expected",
    [
        ("which animal cannot fly and lives near the south pole?", "penguin"),
        ("how do green leaves turn light into food", "photosynthesis"),
        ("cryptocurrency ledger", "bitcoin"),
    ],
)
def test_search_ranks_the_relevant_document_first(api, corpus, query, expected):
    name, _ = corpus
    # Paraphrases: the dense pipeline's strength (the default, hybrid, also
    # weighs shared words; tests/integration/test_search_pipelines.py).
    response = api.post(f"/api/v1/collections/{name}/search", json={"query": query, "top_k": 5, "pipeline": "dense"})
    assert response.status_code == 202
    assert response.headers["Location"] == f"/api/v1/jobs/{response.json()['id']}"
    assert int(response.headers["Retry-After"]) >= 1
    assert response.json()["status"] in ("queued", "running")
    assert response.headers["Cache-Control"] == "no-store"

    job = api.wait_job(response.json()["id"])
    assert job["status"] == "succeeded", job
    hits = job["result"]["hits"]
    assert hits[0]["document_id"] == expected
    assert len(hits) == 5
    assert [h["score"] for h in hits] == sorted((h["score"] for h in hits), reverse=True)
    assert hits[0]["metadata"] == {"topic": expected}
    assert hits[0]["text"] == dict(TOPICS)[expected]
    assert job["result"]["pipeline"] == "dense"
    assert job["result"]["index_generation"] >= 1
    # The worker's own timing lies inside the job's running time.
    running_ms = (parse_time(job["finished_at"]) - parse_time(job["started_at"])).total_seconds() * 1000
    assert 0 < job["result"]["took_ms"] <= running_ms


def test_search_filters_restrict_hits_to_matching_metadata(api, corpus):
    name, _ = corpus
    job = api.search(name, query="frozen ice", top_k=10, filters={"topic": ["bread", "jazz"]})
    assert job["status"] == "succeeded"
    assert sorted(h["document_id"] for h in job["result"]["hits"]) == ["bread", "jazz"]


def test_file_upload_is_ingested_and_searchable(api):
    name = unique("files")
    response = api.post(
        f"/api/v1/collections/{name}/documents",
        files=[
            ("files", ("lava.txt", b"Basalt forms when lava cools quickly at the surface.", "text/plain")),
            ("files", ("notes.md", b"# Knots\nA bowline makes a fixed loop at the end of a rope.", "text/markdown")),
        ],
        data={"metadata": '{"team": "docs"}'},
    )
    assert response.status_code == 202, response.text
    job = api.wait_job(response.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["documents"] == 2

    hits = api.search(name, query="tie a loop in a rope", top_k=1)["result"]["hits"]
    assert hits[0]["document_id"] == "notes.md"
    assert hits[0]["metadata"] == {"filename": "notes.md", "team": "docs"}


def test_a_bad_file_fails_alone_and_the_others_are_ingested(api):
    name = unique("mixed")
    response = api.post(
        f"/api/v1/collections/{name}/documents",
        files=[
            ("files", ("good.txt", b"Granite is an igneous rock with visible crystals.", "text/plain")),
            # Latin-1, not UTF-8: it looks like text at upload and fails to decode in the worker.
            ("files", ("bad.txt", b"Caf\xe9 cr\xe8me br\xfbl\xe9e", "text/plain")),
        ],
    )
    job = api.wait_job(response.json()["id"])
    assert job["status"] == "succeeded"
    assert job["result"]["documents"] == 1
    assert [f["source"] for f in job["result"]["failed"]] == ["bad.txt"]
    assert "UTF-8" in job["result"]["failed"][0]["error"]


def test_uploading_identical_content_again_adds_no_chunks(api, corpus):
    name, _ = corpus
    again = [{"text": text} for _, text in TOPICS[:3]]
    job = api.ingest(name, again)
    assert job["status"] == "succeeded"
    assert (job["result"]["documents"], job["result"]["chunks"], job["result"]["skipped_duplicates"]) == (0, 0, 3)
    assert api.get(f"/api/v1/collections/{name}").json()["chunks"] == 20


def test_job_polling_supports_etags(api, corpus):
    name, job = corpus
    first = api.get(f"/api/v1/jobs/{job['id']}")
    assert first.status_code == 200 and first.headers.get("ETag")
    assert "Retry-After" not in first.headers  # finished: nothing more to wait for
    again = api.get(f"/api/v1/jobs/{job['id']}", headers={"If-None-Match": first.headers["ETag"]})
    assert again.status_code == 304 and again.content == b""
    assert "no-store" not in again.headers.get("Cache-Control", "")  # final: may be cached


def test_a_conditional_poll_of_a_job_the_key_cannot_see_is_404(api, corpus):
    _, job = corpus
    world = api.client(api.create_key(unique("other-tenant"), scopes="read"))
    for etag in ("*", 'W/"anything"'):
        assert api.get("/api/v1/jobs/" + "0" * 32, headers={"If-None-Match": etag}).status_code == 404
        other = world.get(f"/api/v1/jobs/{job['id']}", headers={"If-None-Match": etag})
        assert other.status_code == 404


def test_a_304_poll_does_not_count_against_the_rate_limit(api, corpus):
    _, job = corpus
    for _attempt in range(3):  # a fixed window may roll over mid-sequence: try again
        first = api.get(f"/api/v1/jobs/{job['id']}")
        etag = {"If-None-Match": first.headers["ETag"]}
        polls = [api.get(f"/api/v1/jobs/{job['id']}", headers=etag) for _ in range(3)]
        plain = api.get(f"/api/v1/jobs/{job['id']}")
        answers = [first, *polls, plain]
        if len({a.headers["X-RateLimit-Reset"] for a in answers}) == 1:
            break
    assert [p.status_code for p in polls] == [304] * 3
    remaining = int(first.headers["X-RateLimit-Remaining"])
    assert [int(p.headers["X-RateLimit-Remaining"]) for p in polls] == [remaining] * 3
    assert int(plain.headers["X-RateLimit-Remaining"]) == remaining - 1


def test_a_poll_returns_exactly_the_json_the_services_build(api, corpus, runtime):
    """Workers build a job's JSON (for webhooks) without the HTTP layer."""
    from app.models import Job
    from app.services.jobs import job_to_dict

    _, job = corpus
    polled = api.get(f"/api/v1/jobs/{job['id']}").json()
    with runtime.session_scope() as session:
        assert job_to_dict(session.get(Job, job["id"])) == polled


def test_jobs_list_newest_first_with_filters_and_cursor(api, corpus):
    name, _ = corpus
    api.search(name, query="violin bow")
    api.search(name, query="espresso")
    page = api.get("/api/v1/jobs", params={"collection": name, "type": "search", "limit": 1}).json()
    assert len(page["items"]) == 1 and page["next_cursor"]
    assert page["items"][0]["type"] == "search"
    seen = [page["items"][0]["id"]]
    while page["next_cursor"]:
        page = api.get(
            "/api/v1/jobs",
            params={"collection": name, "type": "search", "limit": 1, "cursor": page["next_cursor"]},
        ).json()
        seen += [j["id"] for j in page["items"]]
    assert len(seen) == len(set(seen)) >= 2
    created = [api.get(f"/api/v1/jobs/{i}").json()["created_at"] for i in seen]
    assert created == sorted(created, reverse=True)
    ingests = api.get("/api/v1/jobs", params={"collection": name, "type": "ingest"}).json()["items"]
    assert ingests and all(j["type"] == "ingest" for j in ingests)


def test_collections_create_conflict_list_and_read(api):
    name = unique("empty")
    created = api.post("/api/v1/collections", json={"name": name, "description": "nothing yet"})
    assert created.status_code == 201
    assert created.json()["name"] == name and created.json()["documents"] == 0
    assert created.json()["index_type"] == "flat" and created.json()["generation"] == 0

    conflict = api.post("/api/v1/collections", json={"name": name})
    assert conflict.status_code == 409
    assert conflict.headers["Content-Type"] == "application/problem+json"
    assert conflict.json()["code"] == "conflict"

    names = []
    page = {"next_cursor": None}
    while True:
        params = {"limit": 100, **({"cursor": page["next_cursor"]} if page["next_cursor"] else {})}
        page = api.get("/api/v1/collections", params=params).json()
        names += [c["name"] for c in page["items"]]
        if not page["next_cursor"]:
            break
    assert name in names

    empty = api.search(name, query="anything")
    assert empty["status"] == "succeeded" and empty["result"]["hits"] == []


def test_polls_answer_while_a_writer_holds_the_sqlite_lock(api, corpus, database_url):
    """Reads never wait for the write lock (a long ingest batch, say)."""
    if not database_url.startswith("sqlite"):
        pytest.skip("SQLite locking only")
    import sqlite3

    _, job = corpus
    writer = sqlite3.connect(database_url.removeprefix("sqlite:///"), isolation_level=None)
    try:
        writer.execute("BEGIN IMMEDIATE")  # holds the write lock, as a worker mid-write
        # busy_timeout is 30 s: a poll that needed the lock would wait that long.
        with api.worker.paused():  # the inline worker would write: it waits here
            started = time.monotonic()
            response = api.get(f"/api/v1/jobs/{job['id']}")
            assert response.status_code == 200 and response.json()["status"] == "succeeded"
            assert api.get("/api/v1/collections").status_code == 200
            assert time.monotonic() - started < 10
    finally:
        writer.execute("ROLLBACK")
        writer.close()


def test_an_old_queued_job_is_next_worth_polling_after_half_its_age(api, runtime):
    """Whether the poll is answered 200 or 304, a job queued for 10 s says
    to look again in about 5 s, not after a typical job's duration."""
    from datetime import timedelta

    from sqlalchemy import update

    from app.models import Job, utcnow
    from app.services import jobs
    from app.services.keys import SCOPES, Principal, find_tenant

    # Submitted through the services, for the tier key's tenant, aged, and
    # polled while no worker runs: it stays queued.
    with api.worker.paused():
        with runtime.session_scope() as session:
            tenant = find_tenant(session, TENANT)
            principal = Principal(tenant.id, "old-job-key", frozenset(SCOPES), "enterprise")
            job_id = jobs.submit(session, principal, "search", params={}, total=1).id
            session.execute(update(Job).where(Job.id == job_id).values(created_at=utcnow() - timedelta(seconds=10)))
            session.commit()
        first = api.get(f"/api/v1/jobs/{job_id}")
        again = api.get(f"/api/v1/jobs/{job_id}", headers={"If-None-Match": first.headers["ETag"]})
        assert api.post(f"/api/v1/jobs/{job_id}/cancel").status_code == 200  # it was never meant to run
    assert (first.status_code, again.status_code) == (200, 304)
    assert 5000 <= first.json()["poll_after_ms"] < 5500
    assert {first.headers["Retry-After"], again.headers["Retry-After"]} <= {"5", "6"}  # whole seconds, rounded up
