"""Search: submit a search job (web), run it against the collection's indexes
through the chosen pipeline (worker)."""

from __future__ import annotations

import time
from typing import Any

from sqlalchemy.orm import Session

from app.config import settings
from app.extensions import db
from app.models import Job
from app.search.answers import extractive_answer
from app.search.index_store import CollectionIndex
from app.search.pipelines import PIPELINES
from app.services import jobs, search_cache
from app.services.collections import get_collection
from app.services.errors import JobFailure, PipelineUnavailable
from app.services.indexing import embedder, index_for_search
from app.services.jobs import JobContext
from app.services.jobs.idempotency import Idempotency
from app.services.keys import Principal
from app.services.retrieval import document_map, hydrate, ranked, search_resources

# A pipeline's configuration does not change while the service runs.
UNAVAILABLE_RETRY_AFTER = 300


def submit_search(
    session: Session, principal: Principal, collection_name: str, params: dict[str, Any],
    idempotency: Idempotency | None = None,
) -> Job:
    return _submit(session, principal, "search", collection_name, params, total=1, idempotency=idempotency)


def submit_search_batch(
    session: Session, principal: Principal, collection_name: str, params: dict[str, Any],
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
        if job_type == "search" else None
    )
    return jobs.submit(
        session, principal, job_type, params=params, collection=collection, total=total,
        idempotency=idempotency, answered=answered,
    )


def run_search(ctx: JobContext) -> dict[str, Any]:
    """One search; an identical one computing at the same time is waited for
    rather than computed twice, and the answer is cached for the next."""
    started = time.perf_counter()
    index = _current_index(ctx.collection_id)
    key = search_cache.cache_key(ctx.collection_id, index.generation, ctx.params)
    if (answer := search_cache.claim_or_wait(key, ctx.job_id)) is not None:
        return answer
    try:
        query = ctx.params["query"]
        hits = search_collection(index, ctx.collection_id, [query], ctx.params)[0]
        result: dict[str, Any] = {"hits": hits}
        if ctx.params.get("include_answer"):
            result["answer"] = extractive_answer(query, hits, embedder())
        result = {**_finished(result, ctx.params, started, index.generation), "cached": False}
        search_cache.store(key, result)
        return result
    finally:
        search_cache.release(key)


def run_search_batch(ctx: JobContext) -> dict[str, Any]:
    """Every query of the batch goes through one encode and one index search."""
    started = time.perf_counter()
    queries = ctx.params["queries"]
    index = _current_index(ctx.collection_id)
    hits_per_query = search_collection(index, ctx.collection_id, queries, ctx.params)
    results = []
    for query, hits in zip(queries, hits_per_query):
        entry: dict[str, Any] = {"query": query, "hits": hits}
        if ctx.params.get("include_answer"):
            entry["answer"] = extractive_answer(query, hits, embedder())
        results.append(entry)
    ctx.checkpoint(len(queries))
    return _finished({"results": results}, ctx.params, started, index.generation)


def _current_index(collection_id: str) -> CollectionIndex:
    try:
        return index_for_search(collection_id)
    except LookupError:
        raise JobFailure("not_found", "The collection was deleted before the search ran.") from None


def search_collection(
    index: CollectionIndex, collection_id: str, queries: list[str], params: dict[str, Any]
) -> list[list[dict[str, Any]]]:
    """The hits of each query in this index generation."""
    # Only reads from here: on SQLite they never queue behind an index writer.
    with db.reads_only():
        documents = document_map(collection_id, index.generation)
        pipeline = PIPELINES[params["pipeline"]](search_resources())
        rankings = ranked(
            pipeline,
            index,
            queries,
            top_k=params["top_k"],
            allowed_ids=documents.allowed_chunks(params.get("filters") or {}),
            documents=documents if params.get("collapse") == "document" else None,
        )
        with db.session_scope() as session:
            return hydrate(session, rankings)


def _finished(result: dict[str, Any], params: dict[str, Any], started: float, generation: int) -> dict[str, Any]:
    return {
        **result,
        "pipeline": params["pipeline"],
        "took_ms": round((time.perf_counter() - started) * 1000, 2),
        "index_generation": generation,
    }
