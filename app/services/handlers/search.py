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
from app.services.jobs import CRASHED, JobContext, JobFollows
from app.services.jobs.batches import Outcomes
from app.services.jobs.following import follow

T = TypeVar("T")
log = logging.getLogger(__name__)


def run_search(ctx: JobContext) -> dict[str, Any]:
    """One search: a micro-batch of one."""
    outcome = run_searches([ctx])[ctx.job_id]
    if isinstance(outcome, JobFollows):
        raise outcome
    if isinstance(outcome, JobFailure):  # raised afresh: the outcome may be a shared one (CRASHED)
        raise JobFailure(outcome.code, outcome.message)
    return outcome


def run_searches(contexts: list[JobContext]) -> Outcomes:
    """Single searches that waited together, each job getting its own outcome.

    Per collection, one index generation. Per distinct search (its cache
    key), one answer shared by the identical jobs of the batch: answered
    before (the cache); being computed by another worker, whose job these
    jobs then follow, leaving this worker at once (JobFollows); or computed
    here, one pipeline call (one encode, one index search) for all the
    searches with the same options. Only the job that computed an answer
    reads `cached: false`."""
    started = time.perf_counter()
    outcomes: Outcomes = {}
    for collection_id, group in _grouped(contexts, lambda ctx: ctx.collection_id).items():
        try:
            index = _current_index(collection_id)
        except JobFailure as failure:
            outcomes.update((ctx.job_id, failure) for ctx in group)
            continue
        keys = {ctx.job_id: search_cache.cache_key(collection_id, index.generation, ctx.params) for ctx in group}
        outcomes.update(_searched(_Batch(index, collection_id, keys, started), group))
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
    follows: str | None = None  # the job computing it elsewhere, followed by this search's jobs

    def outcome_for(self, job_id: str) -> dict[str, Any] | JobFailure | JobFollows:
        if self.follows is not None:
            return JobFollows(self.follows)
        if self.failure is not None:
            return self.failure
        return {**self.result, "cached": self.computed_by != job_id}


def _searched(batch: _Batch, group: list[JobContext]) -> Outcomes:
    """Each job's outcome, from one answer per distinct search."""
    answers: dict[str, _Answer] = {}
    computing: list[JobContext] = []  # one job per search computed here
    for key, identical in _grouped(group, lambda ctx: batch.keys[ctx.job_id]).items():
        found = _answer_or_computer(key, identical)
        if isinstance(found, _Answer):
            answers[key] = found
        else:
            computing.append(found)
    try:
        answers.update(_compute(batch, computing))
    finally:
        for ctx in computing:
            search_cache.release_inflight(batch.keys[ctx.job_id], ctx.job_id)
    return {ctx.job_id: answers[batch.keys[ctx.job_id]].outcome_for(ctx.job_id) for ctx in group}


def _answer_or_computer(key: str, identical: list[JobContext]) -> _Answer | JobContext:
    """The answer when this worker need not compute it: cached, or being
    computed by another job, which the identical jobs then follow. Otherwise
    the one of them that computes it here, holding its in-flight mark."""
    if (cached := search_cache.lookup(key)) is not None:
        return _Answer(cached)
    first = identical[0]
    # The mark may already be one of these jobs', from a run its worker did not finish.
    holder = search_cache.claim_inflight(key, first.job_id) or first.job_id
    computer = next((ctx for ctx in identical if ctx.job_id == holder), None)
    if computer is None and follow(holder, identical):
        return _Answer(follows=holder)
    # Answered since the first look (perhaps by the leader that could not be
    # followed because it just finished)?
    if (cached := search_cache.lookup(key, counted=False)) is not None:
        if computer is not None:
            search_cache.release_inflight(key, computer.job_id)
        return _Answer(cached)
    # Without an answer from the holder (it failed, or its worker died) this
    # worker computes it; the mark stays the holder's until it runs out.
    return computer or first


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
