"""Requests that come too early, and what this process remembers to answer
them cheaply: a key's retries past its rate limit, and conditional polls of
a job sooner than its poll hint.

Retries past the limit. The limiter's answer to a key past its limit costs
a Redis round trip (the window's read) and a 429 built by the app; a client
that ignores `Retry-After` sends one per retry, for every other client to
pay in CPU. Until the moment the 429 named (`X-RateLimit-Reset`,
the sliding window's next free request) the limiter's answer cannot change
— a refused request is not counted, and the others of that key are refused
too — so the app answers the same 429 from memory (`Refusals`).

Early polls. A conditional poll (If-None-Match) is free by the API's
contract, so a client may send one every few milliseconds; the job cannot be
worth polling again before the `poll_after_ms` the last answer gave (for a
finished job, which never changes, HOLD_SECONDS).

Both kinds are also held back by the web worker (app/web_worker.py), without
a thread, before the app sees them: a retry until its refusal is about to
lapse, an early poll until its hint has passed, at most HOLD_SECONDS either
way. A client that follows `Retry-After` and `poll_after_ms` is never held
and loses nothing; one that ignores them is answered about as often as the
hints say instead of as fast as it can send. The worker knows a request by
the API key it presents (kept here only as a digest) and its path, before
anything is parsed. Each process learns from its own answers.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

# Entries remembered at most, per kind (many keys at once): the oldest go
# first, and are merely decided afresh.
MAX_REMEMBERED = 10_000
# Longest a request is held back before the app answers it.
HOLD_SECONDS = 1.0
# Holds shorter than this are not worth a trip through the event loop.
MIN_HOLD_SECONDS = 0.005


@dataclass(frozen=True)
class Refusal:
    until: float  # the window's next free request, seconds since the epoch
    limit: int  # requests per window (X-RateLimit-Limit)
    detail: str  # the limiter's own 429 detail


def credential_digest(presented: bytes) -> bytes:
    """What a presented API key is remembered by (never the key itself)."""
    return hashlib.sha256(presented).digest()


class _Remembered:
    """A bounded map, oldest entries dropped first, safe across threads."""

    def __init__(self) -> None:
        self._items: dict = {}
        self._lock = threading.Lock()

    def put(self, key, value) -> None:
        with self._lock:
            self._items.pop(key, None)
            self._items[key] = value
            while len(self._items) > MAX_REMEMBERED:
                del self._items[next(iter(self._items))]

    def get(self, key):
        with self._lock:
            return self._items.get(key)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


class Refusals:
    """Keys past their rate limit, until their window frees."""

    def __init__(self) -> None:
        self._by_key = _Remembered()
        self._until_by_credential = _Remembered()

    def remember(self, key: str, refusal: Refusal, presented: str | None = None) -> None:
        """`key`: the limiter's; `presented`: the valid API key the request carried, if any."""
        self._by_key.put(key, refusal)
        if presented:
            self._until_by_credential.put(credential_digest(presented.encode()), refusal.until)

    def current(self, key: str) -> Refusal | None:
        """The refusal that still holds for `key`, if any."""
        refusal = self._by_key.get(key)
        return refusal if refusal is not None and refusal.until > time.time() else None

    def until(self, presented: bytes) -> float | None:
        return self._until_by_credential.get(credential_digest(presented))

    def forget(self) -> None:
        self._by_key.clear()
        self._until_by_credential.clear()


class EarlyPolls:
    """When each key's conditional polls of each job are next worth answering."""

    def __init__(self) -> None:
        self._next = _Remembered()

    def remember(self, presented: str | None, path: str, poll_after_ms: int | None) -> None:
        """A conditional poll of `path` with the API key `presented` was
        answered; `poll_after_ms` is its hint, None when the job is final."""
        if not presented:
            return
        wait = HOLD_SECONDS if poll_after_ms is None else poll_after_ms / 1000
        self._next.put((credential_digest(presented.encode()), path), time.time() + wait)

    def until(self, presented: bytes, path: bytes) -> float | None:
        return self._next.get((credential_digest(presented), path.decode("latin-1")))


refusals = Refusals()
early_polls = EarlyPolls()


def hold_seconds(presented: bytes | None, method: bytes, path: bytes, conditional: bool) -> float:
    """How long the web worker holds back a request, from its head alone."""
    if not presented:
        return 0.0
    until = refusals.until(presented)
    if conditional and method == b"GET":
        until = max(until or 0.0, early_polls.until(presented, path) or 0.0)
    hold = min(HOLD_SECONDS, (until or 0.0) - time.time())
    return hold if hold >= MIN_HOLD_SECONDS else 0.0
