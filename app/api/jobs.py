from __future__ import annotations

from flask_smorest import Blueprint

from app.api import API_PREFIX, retry_after
from app.api.schemas import JobListArgsSchema, JobPageSchema, JobSchema
from app.auth import current_tenant_id
from app.extensions import db
from app.services import jobs

blp = Blueprint("jobs", __name__, url_prefix=f"{API_PREFIX}/jobs", description="Poll jobs")


@blp.route("/<job_id>")
@blp.etag
@blp.response(200, JobSchema)
@blp.alt_response(404, description="No such job")
def get_job(job_id: str):
    """Read a job: its status, progress, result or error.

    Send the `ETag` back in `If-None-Match` to get `304 Not Modified` while
    nothing changed. `Retry-After` says when to poll again.
    """
    job = jobs.get_job(db.session, current_tenant_id(), job_id)
    headers = {"Retry-After": retry_after(job)} if job.status in job.ACTIVE else {}
    return job, 200, headers


@blp.route("")
@blp.arguments(JobListArgsSchema, location="query", as_kwargs=True)
@blp.response(200, JobPageSchema)
def list_jobs(limit: int, cursor: str | None, **filters):
    """List jobs, newest first, optionally by status, type and collection."""
    items, next_cursor = jobs.list_jobs(
        db.session,
        current_tenant_id(),
        limit=limit,
        cursor=cursor,
        status=filters.get("status"),
        job_type=filters.get("type"),
        collection=filters.get("collection"),
    )
    return {"items": items, "next_cursor": next_cursor}
