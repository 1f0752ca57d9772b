"""Search jobs, web side: check the pipeline can run, answer from the result
cache when it can, and submit the job (app/services/handlers/search.py runs
it)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from app.extensions import settings
from app.models import Job
from app.search.pipelines import PIPELINES
from app.services import jobs, search_cache
from app.services.collections import get_collection
from app.services.errors import PipelineUnavailable
from app.services.jobs.idempotency import Idempotency
from app.services.keys import Principal

# A pipeline's configuration does not change while the service runs.
UNAVAILABLE_RETRY_AFTER = 300


def submit_search(
    session: Session,
    principal: Principal,
    collection_name: str,
    params: dict[str, Any],
    idempotency: Idempotency | None = None,
) -> Job:
    return _submit(session, principal, "search", collection_name, params, total=1, idempotency=idempotency)


def submit_search_batch(
    session: Session,
    principal: Principal,
    collection_name: str,
    params: dict[str, Any],
    idempotency: Idempotency | None = None,
) -> Job:
    total = len(params["queries"])
    return _submit(session, principal, "search_batch", collection_name, params, total=total, idempotency=idempotency)


def _submit(session, principal, job_type, collection_name, params, *, total, idempotency) -> Job:
    collection = get_collection(session, principal.tenant_id, collection_name)
    reason = PIPELINES[params["pipeline"]].unavailable_reason(settings)
    if reason is not None:
        raise PipelineUnavailable(
            f"The {params['pipeline']!r} pipeline is unavailable: {reason}", retry_after=UNAVAILABLE_RETRY_AFTER
        )
    # Answered before at this generation: the job is born succeeded.
    answered = (
        search_cache.lookup(search_cache.cache_key(collection.id, collection.generation, params))
        if job_type == "search"
        else None
    )
    return jobs.submit(
        session,
        principal,
        job_type,
        params=params,
        collection=collection,
        total=total,
        idempotency=idempotency,
        answered=answered,
    )
