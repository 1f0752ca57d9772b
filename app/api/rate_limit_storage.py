"""Flask-Limiter's Redis storage, reading a key's window once per request.

With a conditional deduction (a 304 costs nothing), Flask-Limiter reads the
window before the view (`test`), counts the request after it (`hit`), and
reads the window again for the X-RateLimit-* headers: three round trips for
a counted request, two for a 304. Here the first read is kept for the rest of
the request and the count moves it on, so a counted request costs the read
and the write, and a 304 the read alone. The counting itself (the scripts,
the keys, the arithmetic) stays the `limits` library's.

Selected by the `quarry+` prefix on the storage URL (limits registers storage
classes by URL scheme); other schemes keep the library's own storage.
"""

from __future__ import annotations

import time
from typing import Any

from flask import g, has_request_context
from limits.storage import RedisStorage

SCHEME_PREFIX = "quarry+"

Window = tuple[int, float, int, float]  # previous count, its ttl, current count, its ttl (seconds)


def storage_uri(url: str) -> str:
    """The storage URL Flask-Limiter is given: a Redis URL selects this storage."""
    return SCHEME_PREFIX + url if url.split("://", 1)[0] in ("redis", "rediss") else url


class RequestScopedRedisStorage(RedisStorage):
    STORAGE_SCHEME = [SCHEME_PREFIX + "redis", SCHEME_PREFIX + "rediss"]

    def __init__(self, uri: str, **options: Any) -> None:
        super().__init__(uri.removeprefix(SCHEME_PREFIX), **options)

    def get_sliding_window(self, key: str, expiry: int) -> Window:
        windows = _windows()
        if windows is not None and key in windows:
            return windows[key][0]
        window = super().get_sliding_window(key, expiry)
        if windows is not None:
            windows[key] = (window, time.monotonic())
        return window

    def acquire_sliding_window_entry(self, key: str, limit: int, expiry: int, amount: int = 1) -> bool:
        acquired = super().acquire_sliding_window_entry(key, limit, expiry, amount)
        windows = _windows()
        if windows is not None and key in windows:
            (previous, previous_ttl, current, current_ttl), read_at = windows.pop(key)
            elapsed = time.monotonic() - read_at
            previous_ttl, current_ttl = max(0.0, previous_ttl - elapsed), current_ttl - elapsed
            # A current window that did not exist when read got its expiry
            # with this count, and one that has ended since was shifted to
            # the previous: those are read again.
            if acquired and current_ttl > expiry:
                windows[key] = ((previous, previous_ttl, current + amount, current_ttl), time.monotonic())
        return acquired


def _windows() -> dict[str, tuple[Window, float]] | None:
    """This request's windows as read, and when, by key; None outside a request."""
    if not has_request_context():
        return None
    if "rate_limit_windows" not in g:
        g.rate_limit_windows = {}
    return g.rate_limit_windows
