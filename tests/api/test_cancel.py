"""Cancelling jobs through the API: a queued job never runs, a running
ingest stops at its next checkpoint and keeps what it committed, a finished
job is 409."""

from __future__ import annotations

import threading

from devstack.waiting import wait_until
from tests.integration.corpora import large_corpus, unique
from tests.integration.problems import assert_problem


def test_cancel_before_and_during_a_run(api):
    client = api.client(api.create_key(unique("cancel")))
    with client.worker.paused():  # no worker yet: submitted jobs wait in the queue
        assert client.post("/api/v1/collections", json={"name": "notes"}).status_code == 201
        search = client.post("/api/v1/collections/notes/search", json={"query": "anything"}).json()
        assert search["status"] == "queued"

        cancelled = client.post(f"/api/v1/jobs/{search['id']}/cancel")
        assert cancelled.status_code == 200, cancelled.text
        assert cancelled.json()["status"] == "cancelled" and cancelled.json()["finished_at"]
        assert "Retry-After" not in cancelled.headers

        documents = large_corpus(400)
        ingest = client.post("/api/v1/collections/notes/documents", json={"documents": documents}).json()
    # A worker thread takes the cancelled search's message first, then the
    # ingest, while this thread polls and cancels.
    worker = threading.Thread(target=client.worker.run_pending)
    worker.start()
    watcher = client.watching()

    def mid_way():
        job = watcher.get(f"/api/v1/jobs/{ingest['id']}").json()
        return job if 0 < job["progress"]["processed"] < 200 else None

    wait_until(mid_way, 120, interval=0.05, what="ingest progress")
    asked = watcher.post(f"/api/v1/jobs/{ingest['id']}/cancel")
    assert asked.status_code == 200, asked.text
    assert asked.json()["cancel_requested"] is True
    assert asked.json()["status"] in ("running", "cancelled")
    worker.join(120)

    job = client.wait_job(ingest["id"])
    assert job["status"] == "cancelled", job
    assert 0 < job["progress"]["processed"] < job["progress"]["total"] == 400
    kept = job["result"]["documents"]
    assert 0 < kept < 400 and job["result"]["failed"] == []
    collection = client.get("/api/v1/collections/notes").json()
    assert collection["documents"] == kept

    # What the ingest committed before it stopped is searchable.
    hits = client.search("notes", query=documents[0]["text"], top_k=1)["result"]["hits"]
    assert hits[0]["document_id"] == "doc-0"

    # The search cancelled while queued never ran.
    never_ran = client.get(f"/api/v1/jobs/{search['id']}").json()
    assert never_ran["status"] == "cancelled"
    assert never_ran["started_at"] is None and never_ran["attempts"] == 0 and never_ran["result"] is None


def test_cancelling_a_finished_job_is_409_and_an_unknown_job_404(api):
    name = unique("cancel")
    job = api.ingest(name, [{"text": "Kelp forests shelter sea otters."}])
    assert job["status"] == "succeeded"
    body = assert_problem(api.post(f"/api/v1/jobs/{job['id']}/cancel"), 409, "conflict")
    assert "succeeded" in body["detail"]
    assert api.get(f"/api/v1/jobs/{job['id']}").json()["status"] == "succeeded"
    assert_problem(api.post("/api/v1/jobs/no-such-job/cancel"), 404, "not_found")
