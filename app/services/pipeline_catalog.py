"""The pipelines a tenant can search with: what each does, whether it can
run here, and how it has been doing lately (from the tenant's own jobs)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import settings
from app.models import Job
from app.search.pipelines import DEFAULT_PIPELINE, PIPELINES
from app.services.errors import NotFound
from app.services.jobs import JobStatus
from app.services.stats import percentile

# The figures come from this many of the tenant's latest searches.
STATS_WINDOW = 1000


def list_pipelines(session: Session, tenant_id: str) -> list[dict[str, Any]]:
    took = _recent_took_ms(session, tenant_id)
    return [_describe(name, took.get(name, [])) for name in PIPELINES]


def get_pipeline(session: Session, tenant_id: str, name: str) -> dict[str, Any]:
    if name not in PIPELINES:
        raise NotFound(f"No pipeline named {name!r}; see GET /api/v1/pipelines.")
    return _describe(name, _recent_took_ms(session, tenant_id).get(name, []))


def _describe(name: str, took_ms: list[float]) -> dict[str, Any]:
    pipeline = PIPELINES[name]
    reason = pipeline.unavailable_reason(settings)
    return {
        "name": name,
        "status": "unavailable" if reason else "healthy",
        "reason": reason,
        "description": pipeline.description,
        "capabilities": list(pipeline.capabilities),
        "default": name == DEFAULT_PIPELINE,
        "stats": {
            "searches": len(took_ms),
            "p50_took_ms": percentile(took_ms, 50, digits=2),
            "p95_took_ms": percentile(took_ms, 95, digits=2),
            "window": f"this tenant's latest {STATS_WINDOW} succeeded searches",
        },
    }


def _recent_took_ms(session: Session, tenant_id: str) -> dict[str, list[float]]:
    # Only two small JSON fields per job, not the hits.
    rows = session.execute(
        select(Job.params["pipeline"].as_string(), Job.result["took_ms"].as_float())
        # Single searches only: a batch's took_ms covers all of its queries.
        .where(Job.tenant_id == tenant_id, Job.type == "search", Job.status == JobStatus.SUCCEEDED)
        .order_by(Job.created_at.desc())
        .limit(STATS_WINDOW)
    ).all()
    took: dict[str, list[float]] = {}
    for pipeline, took_ms in rows:
        if pipeline is not None and took_ms is not None:
            took.setdefault(pipeline, []).append(float(took_ms))
    return took
