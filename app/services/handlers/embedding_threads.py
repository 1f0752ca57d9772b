"""How many cores torch may use in a pool process.

Each pool process gets its share (cores / pool size), so a busy pool never
runs more torch threads than there are cores. An ingest that is the only one
embedding on its host takes every core instead: one large upload then runs at
the machine's speed rather than at one process's share. When a second ingest
starts, each drops back to its share at its next batch. Searches keep their
share throughout.

The ingests embedding right now are members of a Redis sorted set per host,
scored by when their claim lapses, so an ingest whose process died stops
counting on its own. Without Redis, every ingest keeps its share.
"""

from __future__ import annotations

import logging
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager

import redis

from app.extensions import redis_store, settings
from app.search.embedding import set_torch_threads

log = logging.getLogger(__name__)

# An ingest renews its claim before every batch; this covers the slowest one.
CLAIM_SECONDS = 120


def pool_share() -> int:
    return max(1, settings.worker_cpus // max(1, settings.worker_concurrency))


def claims_key() -> str:
    return f"quarry:embedding-ingests:{socket.gethostname()}"


@contextmanager
def ingest_embedding(job_id: str) -> Iterator[None]:
    """Around an ingest's embedding: the cores it may use are set before each
    batch by `before_batch`, and its share is restored afterwards."""
    try:
        yield
    finally:
        try:
            redis_store.client.zrem(claims_key(), job_id)
        except redis.RedisError as exc:
            log.debug("could not release the embedding claim of %s: %s", job_id, exc)
        set_torch_threads(pool_share())


def before_batch(job_id: str) -> None:
    """Every core when this is the host's only ingest embedding, else the share."""
    share, cores = pool_share(), settings.worker_cpus
    threads = share
    if cores > share:
        try:
            now = time.time()
            with redis_store.client.pipeline(transaction=True) as pipe:
                pipe.zadd(claims_key(), {job_id: now + CLAIM_SECONDS})
                pipe.zremrangebyscore(claims_key(), "-inf", now)
                pipe.zcard(claims_key())
                pipe.expire(claims_key(), CLAIM_SECONDS)
                embedding = pipe.execute()[2]
            threads = cores if embedding == 1 else share
        except redis.RedisError as exc:
            log.debug("embedding claims unavailable, keeping the share: %s", exc)
    set_torch_threads(threads)
