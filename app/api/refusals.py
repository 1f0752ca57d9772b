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
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass

# Refusals remembered at most (a burst of many keys past their limits): the
# oldest go first, and are merely asked of the limiter again.
MAX_REMEMBERED = 10_000


@dataclass(frozen=True)
class Refusal:
    until: float  # the window's next free request, seconds since the epoch
    limit: int  # requests per window (X-RateLimit-Limit)
    detail: str  # the limiter's own 429 detail


class Refusals:
    def __init__(self) -> None:
        self._by_key: dict[str, Refusal] = {}
        self._lock = threading.Lock()

    def remember(self, key: str, refusal: Refusal) -> None:
        with self._lock:
            self._by_key.pop(key, None)
            self._by_key[key] = refusal
            while len(self._by_key) > MAX_REMEMBERED:
                del self._by_key[next(iter(self._by_key))]

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
