"""A finished job never changes again: every poll after its final transition
answers the JSON that transition rendered. It must read exactly as the job
serialised afresh from its row would, with the same ETag, for every job
type and every way a job ends."""

from __future__ import annotations

import json

from app.api.job_schemas import JobSchema
from app.extensions import db
from app.models import Job
from app.services.jobs import JOB_TYPES, job_to_dict, version_of
from tests.integration.corpora import unique


def finished_jobs(api) -> list[dict]:
    """One job of each type, succeeded, and a search cancelled while queued."""
    name = unique("final")
    ingested = api.ingest(name, [{"id": "owl", "text": "Owls hunt at night."}, {"id": "bat", "text": "Bats too."}])
    searched = api.search(name, query="night birds", top_k=2, include_answer=True)
    batch = api.post(f"/api/v1/collections/{name}/search/batch", json={"queries": ["owls", "bats"]})
    with api.worker.paused():
        queued = api.post(f"/api/v1/collections/{name}/search", json={"query": "never run"}).json()
        assert api.post(f"/api/v1/jobs/{queued['id']}/cancel").json()["status"] == "cancelled"
    deleted_document = api.delete(f"/api/v1/collections/{name}/documents/bat")
    jobs = [ingested, searched, api.wait_job(batch.json()["id"]), api.wait_job(deleted_document.json()["id"])]
    jobs.append(api.wait_job(api.delete(f"/api/v1/collections/{name}").json()["id"]))
    return [*jobs, api.get(f"/api/v1/jobs/{queued['id']}").json()]


def afresh(job_id: str) -> tuple[dict, str]:
    """The job's JSON and ETag, serialised now from its row as a poll of an
    unfinished job is."""
    with db.session_scope() as session:
        job = session.get(Job, job_id)
        assert job is not None and job.final_json is not None
        return json.loads(json.dumps(JobSchema().dump(job_to_dict(job)))), f'W/"{version_of(job).tag}"'


def test_a_finished_jobs_stored_json_reads_as_it_would_serialised_afresh(api):
    jobs = finished_jobs(api)
    assert {job["type"] for job in jobs} == set(JOB_TYPES)
    assert {job["status"] for job in jobs} == {"succeeded", "cancelled"}
    for job in jobs:
        response = api.get(f"/api/v1/jobs/{job['id']}")
        assert response.status_code == 200 and response.headers["Content-Type"] == "application/json"
        body, etag = afresh(job["id"])
        assert response.json() == body, job["type"]
        assert response.headers["ETag"] == etag
        assert "Retry-After" not in response.headers and "poll_after_ms" not in body
        assert api.get(f"/api/v1/jobs/{job['id']}", headers={"If-None-Match": etag}).status_code == 304
