"""Keys past their rate limit, remembered by this process until their window
frees, so that a client retrying in a tight loop is refused without asking
Redis again.

The limiter's answer to a key past its limit costs three Redis round trips
(check, deduction, the headers' window read); a client that ignores
`Retry-After` sends that many per retry, for every other client to pay in
CPU. Until the moment the 429 named (`X-RateLimit-Reset`, the sliding
window's next free request), the limiter's answer cannot change — a refused
request is not counted, and the others of that key are refused too — so this
process answers the same 429 from memory. Each process learns it with one
refusal of its own; after the moment passes the limiter decides again.

The web worker (app/web_worker.py) also holds such a request back, without a
thread, for up to HOLD_SECONDS before the app sees it: a client that honours
`Retry-After` (at least a second) loses nothing, and one that ignores it is
answered about once a second instead of as fast as it can send. It knows the
request by the key it presents, before anything is parsed.
"""

from __future__ import annotations

import hashlib
import threading
import time
from dataclasses import dataclass

# Refusals remembered at most (a burst of many keys past their limits): the
# oldest go first, and are merely asked of the limiter again.
MAX_REMEMBERED = 10_000
# Longest a remembered refusal's request is held back before it is answered.
HOLD_SECONDS = 1.0


@dataclass(frozen=True)
class Refusal:
    until: float  # the window's next free request, seconds since the epoch
    limit: int  # requests per window (X-RateLimit-Limit)
    detail: str  # the limiter's own 429 detail


def credential_digest(presented: bytes) -> bytes:
    """What a presented API key is remembered by (never the key itself)."""
    return hashlib.sha256(presented).digest()


class Refusals:
    def __init__(self) -> None:
        self._by_key: dict[str, Refusal] = {}
        self._until_by_credential: dict[bytes, float] = {}
        self._lock = threading.Lock()

    def remember(self, key: str, refusal: Refusal, presented: str | None = None) -> None:
        """`key`: the limiter's; `presented`: the API key the request carried, if any."""
        with self._lock:
            _remember(self._by_key, key, refusal)
            if presented:
                _remember(self._until_by_credential, credential_digest(presented.encode()), refusal.until)

    def hold_seconds(self, presented: bytes) -> float:
        """How long to hold back a request carrying the API key `presented`."""
        with self._lock:
            until = self._until_by_credential.get(credential_digest(presented))
        return 0.0 if until is None else max(0.0, min(HOLD_SECONDS, until - time.time()))

    def current(self, key: str) -> Refusal | None:
        """The refusal that still holds for `key`, if any."""
        with self._lock:
            refusal = self._by_key.get(key)
            if refusal is not None and refusal.until <= time.time():
                del self._by_key[key]
                return None
            return refusal

    def forget(self) -> None:
        with self._lock:
            self._by_key.clear()
            self._until_by_credential.clear()


def _remember(remembered: dict, key, value) -> None:
    remembered.pop(key, None)
    remembered[key] = value
    while len(remembered) > MAX_REMEMBERED:
        del remembered[next(iter(remembered))]


refusals = Refusals()
