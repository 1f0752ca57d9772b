"""Search jobs, worker side: run each against its collection's indexes through
the chosen pipeline (the web half is app/services/search_jobs.py)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from app.extensions import db
from app.search.answers import extractive_answer
from app.search.index_store import CollectionIndex
from app.search.pipelines import PIPELINES
from app.services import search_cache
from app.services.errors import JobFailure
from app.services.handlers.indexing import embedder, index_for_search
from app.services.handlers.retrieval import document_map, hydrate, ranked, search_resources
from app.services.jobs import CRASHED, JobContext

T = TypeVar("T")
log = logging.getLogger(__name__)


def run_search(ctx: JobContext) -> dict[str, Any]:
    """One search: a micro-batch of one."""
    outcome = run_searches([ctx])[ctx.job_id]
    if isinstance(outcome, JobFailure):  # raised afresh: the outcome may be a shared one (CRASHED)
        raise JobFailure(outcome.code, outcome.message)
    return outcome


def run_searches(contexts: list[JobContext]) -> dict[str, dict[str, Any] | JobFailure]:
    """Single searches that waited together, each job getting its own result:
    per collection one index generation, per set of identical options one
    pipeline call (one encode, one index search) for all their queries.
    Identical searches are computed once (here or by another worker) and an
    answer cached earlier is reused; only the job that computed its answer
    reads `cached: false`."""
    started = time.perf_counter()
    outcomes: dict[str, dict[str, Any] | JobFailure] = {}
    for collection_id, group in _grouped(contexts, lambda ctx: ctx.collection_id).items():
        try:
            index = _current_index(collection_id)
        except JobFailure as failure:
            outcomes.update((ctx.job_id, failure) for ctx in group)
            continue
        keys = {ctx.job_id: search_cache.cache_key(collection_id, index.generation, ctx.params) for ctx in group}
        answers = _answers(_Batch(index, collection_id, keys, started), group)
        for ctx in group:
            answer = answers[keys[ctx.job_id]]
            outcomes[ctx.job_id] = answer.failure or {**answer.result, "cached": answer.computed_by != ctx.job_id}
    return outcomes


@dataclass(frozen=True)
class _Batch:
    """The searches of one collection generation in a micro-batch."""

    index: CollectionIndex
    collection_id: str
    keys: dict[str, str]  # job id → cache key
    started: float


@dataclass(frozen=True)
class _Answer:
    result: dict[str, Any] = field(default_factory=dict)
    failure: JobFailure | None = None
    computed_by: str | None = None  # the job whose search produced it here


def _answers(batch: _Batch, group: list[JobContext]) -> dict[str, _Answer]:
    """Each distinct search's answer, by cache key."""
    firsts: dict[str, JobContext] = {}
    for ctx in group:
        firsts.setdefault(batch.keys[ctx.job_id], ctx)
    answers: dict[str, _Answer] = {}
    mine: list[JobContext] = []
    elsewhere: list[JobContext] = []
    for key, ctx in firsts.items():
        cached, ours = search_cache.try_claim(key, ctx.job_id)
        if cached is not None:
            answers[key] = _Answer(cached)
        else:
            (mine if ours else elsewhere).append(ctx)
    try:
        answers.update(_compute(batch, mine))
    finally:
        for ctx in mine:
            search_cache.release(batch.keys[ctx.job_id])
    for ctx in elsewhere:  # another worker is computing it: wait, or compute if it gave up
        key = batch.keys[ctx.job_id]
        try:
            cached = search_cache.claim_or_wait(key, ctx.job_id)
            answers[key] = _Answer(cached) if cached is not None else _compute(batch, [ctx])[key]
        finally:
            search_cache.release(key)
    return answers


def _compute(batch: _Batch, contexts: list[JobContext]) -> dict[str, _Answer]:
    answers: dict[str, _Answer] = {}
    for group in _grouped(contexts, lambda ctx: _options(ctx.params)).values():
        params = group[0].params
        queries = [ctx.params["query"] for ctx in group]
        try:
            hits_per_query = search_collection(batch.index, batch.collection_id, queries, params)
        except JobFailure as failure:
            answers.update((batch.keys[ctx.job_id], _Answer(failure=failure)) for ctx in group)
            continue
        except Exception:  # only the jobs that shared this call fail with it
            log.exception("search of %d jobs crashed", len(group))
            answers.update((batch.keys[ctx.job_id], _Answer(failure=CRASHED)) for ctx in group)
            continue
        for ctx, query, hits in zip(group, queries, hits_per_query):
            result: dict[str, Any] = {"hits": hits}
            if params.get("include_answer"):
                result["answer"] = extractive_answer(query, hits, embedder())
            result = {**_finished(result, params, batch.started, batch.index.generation), "cached": False}
            search_cache.store(batch.keys[ctx.job_id], result)
            answers[batch.keys[ctx.job_id]] = _Answer(result, computed_by=ctx.job_id)
    return answers


def _options(params: dict[str, Any]) -> str:
    """What searches must share to go through one pipeline call: all but the query."""
    return json.dumps({name: value for name, value in params.items() if name != "query"}, sort_keys=True)


def _grouped(items: list[T], key: Callable[[T], Any]) -> dict[Any, list[T]]:
    groups: dict[Any, list[T]] = {}
    for item in items:
        groups.setdefault(key(item), []).append(item)
    return groups


def run_search_batch(ctx: JobContext) -> dict[str, Any]:
    """Every query of the batch goes through one encode and one index search."""
    started = time.perf_counter()
    queries = ctx.params["queries"]
    collection_id = ctx.require_collection_id()
    index = _current_index(collection_id)
    hits_per_query = search_collection(index, collection_id, queries, ctx.params)
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
