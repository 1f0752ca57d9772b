"""The search result cache, and the in-flight marks of searches being computed.

A search is identified by what decides its answer: the collection and its
index generation, the query, pipeline, top_k, filters, collapse and answer
options. A write to the collection moves the generation, so a stale answer
is never found: invalidation by construction. Redis holds the answers for
SEARCH_CACHE_TTL_SECONDS; when Redis fails, searches are computed as if
nothing were cached.

An in-flight mark names the job computing a search right now, so that an
identical job elsewhere follows it instead of computing it again
(app/services/handlers/search.py); only the job holding the mark removes it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from typing import Any

import redis

from app import metrics
from app.extensions import redis_store, settings

log = logging.getLogger(__name__)

# What decides a search's answer, besides the collection and generation.
_ANSWER_PARAMS = ("query", "pipeline", "top_k", "filters", "collapse", "include_answer")


def enabled() -> bool:
    return settings.search_cache_ttl_seconds > 0


def cache_key(collection_id: str, generation: int, params: dict[str, Any]) -> str:
    asked = {name: params.get(name) for name in _ANSWER_PARAMS}
    digest = hashlib.sha256(json.dumps([collection_id, generation, asked], sort_keys=True).encode()).hexdigest()
    return f"quarry:search-cache:{digest}"


def lookup(key: str, *, counted: bool = True) -> dict[str, Any] | None:
    """The cached answer, marked `cached`; None when absent or Redis fails."""
    if not enabled():
        return None
    try:
        raw = redis_store.client.get(key)
    except redis.RedisError as exc:
        log.warning("search cache unavailable: %s", exc)
        return None
    if counted:
        metrics.SEARCH_CACHE.labels("miss" if raw is None else "hit").inc()
    return {**json.loads(raw), "cached": True} if raw is not None else None


def store(key: str, result: dict[str, Any]) -> None:
    if not enabled():
        return
    try:
        redis_store.client.set(key, json.dumps(result), ex=settings.search_cache_ttl_seconds)
    except redis.RedisError as exc:
        log.warning("search cache unavailable: %s", exc)


def claim_inflight(key: str, job_id: str) -> str | None:
    """Mark `job_id` as the one computing `key`, unless another job already
    is: that job's id, or None when the search is now this job's to compute
    (also when it held the mark already, when the cache is off, or when
    Redis fails). Never waits."""
    if not enabled():
        return None
    try:
        holder = redis_store.client.register_script(_CLAIM)(
            keys=[_inflight(key)], args=[job_id, settings.job_lease_seconds]
        )
    except redis.RedisError as exc:
        log.warning("search cache unavailable: %s", exc)
        return None
    return holder.decode() if holder is not None else None


def release_inflight(key: str, job_id: str) -> None:
    """Remove the in-flight mark if `job_id` still holds it: a mark that ran
    out and was taken by another job stays that job's."""
    if not enabled():
        return
    try:
        redis_store.client.register_script(_RELEASE)(keys=[_inflight(key)], args=[job_id])
    except redis.RedisError as exc:
        log.warning("search cache unavailable: %s", exc)


def _inflight(key: str) -> str:
    return f"{key}:inflight"


# Atomic, so two jobs never both believe they hold the mark. The holder
# itself claims again when its job is re-run after its worker died. The
# mark lives as long as a job's lease: past that its holder is presumed dead.
_CLAIM = """
local holder = redis.call('GET', KEYS[1])
if holder and holder ~= ARGV[1] then
    return holder
end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return false
"""
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
    return redis.call('DEL', KEYS[1])
end
return 0
"""
