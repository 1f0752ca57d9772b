"""Cancelling jobs over HTTP: a queued job never runs, a running ingest stops
at its next checkpoint and keeps what it committed, a finished job is 409."""

from __future__ import annotations

import pytest

from devstack.processes import wait_until
from tests.integration.corpora import large_corpus, unique
from tests.integration.problems import assert_problem

pytestmark = pytest.mark.integration


def test_cancel_before_and_during_a_run(new_stack):
    stack = new_stack()
    stack.start_web()  # no worker yet: submitted jobs wait in the queue
    assert stack.post("/api/v1/collections", json={"name": "notes"}).status_code == 201
    search = stack.post("/api/v1/collections/notes/search", json={"query": "anything"}).json()
    assert search["status"] == "queued"

    cancelled = stack.post(f"/api/v1/jobs/{search['id']}/cancel")
    assert cancelled.status_code == 200, cancelled.text
    assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finished_at"]
    assert "Retry-After" not in cancelled.headers

    documents = large_corpus(400)
    ingest = stack.post("/api/v1/collections/notes/documents", json={"documents": documents}).json()
    stack.start_worker()  # takes the cancelled search's message first, then the ingest

    def mid_way():
        job = stack.get(f"/api/v1/jobs/{ingest['id']}").json()
        return job if 0 < job["progress"]["processed"] < 200 else None

    wait_until(mid_way, 120, interval=0.05, what="ingest progress")
    asked = stack.post(f"/api/v1/jobs/{ingest['id']}/cancel")
    assert asked.status_code == 200, asked.text
    assert asked.json()["cancel_requested"] is True
    assert asked.json()["status"] in ("running", "cancelled")

    job = stack.wait_job(ingest["id"])
    assert job["status"] == "cancelled", job
    assert 0 < job["progress"]["processed"] < job["progress"]["total"] == 400
    kept = job["result"]["documents"]
    assert 0 < kept < 400 and job["result"]["failed"] == []
    collection = stack.get("/api/v1/collections/notes").json()
    assert collection["documents"] == kept

    # What the ingest committed before it stopped is searchable.
    hits = stack.search("notes", query=documents[0]["text"], top_k=1)["result"]["hits"]
    assert hits[0]["document_id"] == "doc-0"

    # The search cancelled while queued never ran.
    never_ran = stack.get(f"/api/v1/jobs/{search['id']}").json()
    assert never_ran["status"] == "cancelled"
    assert never_ran["started_at"] is None and never_ran["attempts"] == 0 and never_ran["result"] is None


def test_cancelling_a_finished_job_is_409_and_an_unknown_job_404(service):
    name = unique("cancel")
    job = service.ingest(name, [{"text": "Kelp forests shelter sea otters."}])
    assert job["status"] == "succeeded"
    body = assert_problem(service.post(f"/api/v1/jobs/{job['id']}/cancel"), 409, "conflict")
    assert "succeeded" in body["detail"]
    assert service.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    assert_problem(service.post("/api/v1/jobs/no-such-job/cancel"), 404, "not_found")
