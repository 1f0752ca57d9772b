from __future__ import annotations

from flask import Response, request

from app.api import API_PREFIX, JOB_HEADERS, job_answer, poll_headers
from app.api.held_requests import early_polls
from app.api.job_schemas import JobPageSchema, JobSchema
from app.api.schemas import JobListArgsSchema
from app.api.web_extensions import Blueprint, response_headers
from app.auth import current_tenant_id, presented_key
from app.extensions import db
from app.services import jobs
from app.services.jobs import job_to_dict

blp = Blueprint("jobs", __name__, url_prefix=f"{API_PREFIX}/jobs", description="Poll and cancel jobs")


@blp.route("/<job_id>")
@blp.doc(operationId="get_job")
@blp.response(200, JobSchema, headers=response_headers("ETag", "Retry-After"))
@blp.alt_response(
    304,
    description="Not modified: the job is still the version named in If-None-Match",
    headers=response_headers("ETag", "Retry-After"),
)
@blp.alt_response(404, description="No such job")
def get_job(job_id: str):
    """Read a job: its status, progress, result or error.

    `result` has one shape per job `type`. Send the `ETag` back in
    `If-None-Match` to get `304 Not Modified` while nothing changed; a 304
    does not count against the rate limit. `Retry-After` (and
    `poll_after_ms`) say when to poll again.
    """
    tenant_id = current_tenant_id()
    if request.if_none_match:
        # Answered from the job's version alone, without reading the job.
        version = jobs.job_version(db.session, tenant_id, job_id)
        # This key's next conditional poll of the job waits for the hint in
        # the web worker (app/api/held_requests.py).
        early_polls.remember(
            presented_key(), request.path, jobs.next_poll_ms(version.status, version.type, version.created_at)
        )
        if request.if_none_match.contains_weak(version.tag):
            headers = {"ETag": _etag(version), **poll_headers(version.status, version.type, version.created_at)}
            return Response(status=304, headers=headers)
    job = jobs.get_job(db.session, tenant_id, job_id)
    etag = _etag(jobs.version_of(job))
    if job.final_json is not None:  # finished: the JSON its final transition rendered
        return Response(job.final_json, status=200, mimetype="application/json", headers={"ETag": etag})
    body, status, headers = job_answer(job)
    return body, status, {**headers, "ETag": etag}


def _etag(version: jobs.JobVersion) -> str:
    # Weak: the JSON's poll hint may change within one version, and gzip
    # (which rewrites strong ETags) must leave it alone.
    return f'W/"{version.tag}"'


@blp.route("/<job_id>/cancel", methods=["POST"])
@blp.doc(operationId="cancel_job")
@blp.response(200, JobSchema, headers=JOB_HEADERS)
@blp.alt_response(404, description="No such job")
@blp.alt_response(409, description="The job already finished")
def cancel_job(job_id: str):
    """Cancel a job.

    A queued job is cancelled at once and never runs. A running job stops at
    its next checkpoint and then reads `cancelled`, with what it had done so
    far in `result` (an ingest keeps the documents it committed); until then
    it reads `running` with `cancel_requested: true`. A finished job is 409.
    """
    return job_answer(jobs.cancel_job(db.session, current_tenant_id(), job_id))


@blp.route("")
@blp.doc(operationId="list_jobs")
@blp.arguments(JobListArgsSchema, location="query", as_kwargs=True)
@blp.response(200, JobPageSchema)
def list_jobs(limit: int, cursor: str | None, **filters):
    """List jobs, newest first, optionally by status, type and collection.

    Finished jobs are kept for JOB_RETENTION_DAYS. Send `next_cursor` back as
    `cursor` for the next page.
    """
    items, next_cursor = jobs.list_jobs(
        db.session,
        current_tenant_id(),
        limit=limit,
        cursor=cursor,
        status=filters.get("status"),
        job_type=filters.get("type"),
        collection=filters.get("collection"),
    )
    return {"items": [job_to_dict(job) for job in items], "next_cursor": next_cursor}
