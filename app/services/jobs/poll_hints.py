"""When a queued or running job is next worth polling.

A job younger than its type's recent typical time from submit to finish
(the 75th percentile: three jobs in four are done by then) is next worth
polling when that time says it will be done (a search that usually finishes
in 60 ms says `poll_after_ms: 60` on its 202, and a client that honours it
mostly polls once). The median would be seen sooner by half the clients and
cost the other half a second poll each; under load every poll is CPU that
searches wait for. A job already older than the typical time (a queue has
formed, say) will finish at a time nobody knows; its hint is half its age
(never less, for any job), so a job ten times slower than usual costs a
handful of polls rather than one per typical time, and is seen at most half
its age late.

Every process records the jobs its workers finish in one short Redis list
per type, so the web processes learn from all workers; each process reads
them at most every REFRESH_SECONDS. Without Redis, or before any job
of the type finished, the kind's fixed hint applies.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from datetime import datetime

import redis

from app.extensions import redis_store
from app.models import utcnow
from app.services.jobs.kinds import JOB_TYPES, kind_of

log = logging.getLogger(__name__)

# Finished jobs per type the typical time is taken over, and how often a
# process rereads them: short enough that the hint follows a load that builds
# up within seconds.
SAMPLES = 50
# The share of recent jobs done by the typical time.
TYPICAL_QUANTILE = 0.75
REFRESH_SECONDS = 1.0
# A job older than the typical time is next polled after this share of its age.
LATE_AGE_SHARE = 0.5
CEILING_MS = 30_000  # a hint never asks a client to wait longer than this

_KEY = "quarry:job-durations:{}"
_lock = threading.Lock()
_typical_ms: dict[str, int] = {}
_read_at = float("-inf")


def record(job_type: str, seconds: float) -> None:
    """Note how long a finished job took from submit to finish."""
    key = _KEY.format(job_type)
    try:
        with redis_store.client.pipeline(transaction=False) as pipe:
            pipe.lpush(key, round(seconds * 1000, 1))
            pipe.ltrim(key, 0, SAMPLES - 1)
            pipe.execute()
    except redis.RedisError as exc:  # a hint is not worth failing anything for
        log.debug("could not record the duration of a %s job: %s", job_type, exc)


def poll_after_ms(job_type: str, created_at: datetime) -> int:
    """Milliseconds until a job of this type, submitted at `created_at`, is next worth polling."""
    age_ms = max(0.0, (utcnow() - created_at).total_seconds() * 1000)
    kind = kind_of(job_type)
    learned = _typical_times().get(job_type)
    typical = kind.poll_after_ms if learned is None else learned
    # Never sooner than half the age either: a job just short of the typical time
    # would otherwise be polled at the floor, and again, on its way past it.
    hint = max(typical - age_ms, age_ms * LATE_AGE_SHARE)
    return min(max(round(hint), kind.poll_floor_ms), CEILING_MS)


def _typical_times() -> dict[str, int]:
    global _typical_ms, _read_at
    with _lock:
        if time.monotonic() - _read_at < REFRESH_SECONDS:
            return _typical_ms
        _read_at = time.monotonic()  # one reader per process refreshes; the rest use the last
    fresh: dict[str, int] = {}
    try:
        with redis_store.client.pipeline(transaction=False) as pipe:
            for job_type in JOB_TYPES:
                pipe.lrange(_KEY.format(job_type), 0, -1)
            for job_type, samples in zip(JOB_TYPES, pipe.execute()):
                if samples:
                    fresh[job_type] = round(_quantile(sorted(float(s) for s in samples), TYPICAL_QUANTILE))
    except redis.RedisError as exc:
        log.debug("could not read job durations: %s", exc)
        return _typical_ms
    with _lock:
        _typical_ms = fresh
    return fresh


def _quantile(ordered: list[float], share: float) -> float:
    """The smallest sample with at least `share` of the samples at or below it."""
    return ordered[max(math.ceil(share * len(ordered)) - 1, 0)]
