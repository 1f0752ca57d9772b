"""The search result cache, and in-flight de-duplication of identical searches.

A search is identified by what decides its answer: the collection and its
index generation, the query, pipeline, top_k, filters, collapse and answer
options. A write to the collection moves the generation, so a stale answer
is never found: invalidation by construction. Redis holds the answers for
SEARCH_CACHE_TTL_SECONDS; when Redis fails, searches are computed as if
nothing were cached.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from typing import Any

import redis

from app import metrics
from app.extensions import redis_store, settings

log = logging.getLogger(__name__)

# What decides a search's answer, besides the collection and generation.
_ANSWER_PARAMS = ("query", "pipeline", "top_k", "filters", "collapse", "include_answer")
# A running identical search is waited for this long before computing anyway
# (its worker may have died; the in-flight mark then expires on its own).
INFLIGHT_SECONDS = 30
_POLL_SECONDS = 0.02


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


def try_claim(key: str, job_id: str) -> tuple[dict[str, Any] | None, bool]:
    """Without waiting: (answer, False) when an identical search was answered
    before; (None, True) when this job is now the one computing it (also when
    the cache is off or Redis fails); (None, False) when another job is
    computing it right now (claim_or_wait for its answer)."""
    if not enabled():
        return None, True
    if (answer := lookup(key)) is not None:
        return answer, False
    try:
        if redis_store.client.set(f"{key}:inflight", job_id, nx=True, ex=INFLIGHT_SECONDS):
            # Answered between the lookup and the mark? Then take that.
            answer = lookup(key, counted=False)
            return answer, answer is None
        return None, False
    except redis.RedisError as exc:
        log.warning("search cache unavailable: %s", exc)
        return None, True


def claim_or_wait(key: str, job_id: str) -> dict[str, Any] | None:
    """The answer when an identical search has already been answered (while
    this job waited in the queue), or is being computed now (waited for).
    Otherwise mark this job as computing `key` and return None: compute it
    (also when the other one's answer does not come in time)."""
    answer, ours = try_claim(key, job_id)
    if answer is not None or ours:
        return answer
    try:
        client = redis_store.client
        deadline = time.monotonic() + INFLIGHT_SECONDS
        while time.monotonic() < deadline:
            if (answer := lookup(key, counted=False)) is not None:
                return answer
            if client.set(f"{key}:inflight", job_id, nx=True, ex=INFLIGHT_SECONDS):
                return lookup(key, counted=False)  # the other one gave up: ours now
            time.sleep(_POLL_SECONDS)
    except redis.RedisError as exc:
        log.warning("search cache unavailable: %s", exc)
    return None


def release(key: str) -> None:
    if not enabled():
        return
    try:
        redis_store.client.delete(f"{key}:inflight")
    except redis.RedisError as exc:
        log.warning("search cache unavailable: %s", exc)
