"""What a call is, and when to try it again: shared by Quarry (blocking) and
AsyncQuarry, which differ only in how they send and sleep.

A resource method builds a `Call` (route, body, how to read the answer); the
client sends it, retrying what is safe to retry, and hands the answer to
`Call.parse`. A submit carries one Idempotency-Key for all of its attempts,
so a retry after a dropped connection finds the job the first attempt made
instead of making a second."""

from __future__ import annotations

import contextlib
import random
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import httpx

from quarry_client.errors import retry_after

# Answers that mean "not now" from the service itself: nothing was done, so
# any call may be sent again once Retry-After has passed.
REFUSED = (429, 503)
# Answers a proxy gives when it may or may not have passed the request on:
# only a call that is safe to repeat is sent again.
GATEWAY = (502, 504)


def _nothing_was_done(response: httpx.Response) -> bool:
    """A 429 (whoever sent it), or a 503 in the service's own problem+json:
    refused before any work. A proxy's 503 after an upstream timeout may
    follow work that was done."""
    return response.status_code == 429 or response.headers.get("Content-Type", "").startswith(
        "application/problem+json"
    )


@dataclass(frozen=True)
class Upload:
    """One file part of a multipart upload: a path (opened for each attempt)
    or the bytes themselves."""

    name: str
    content: Path | bytes
    content_type: str | None = None


@dataclass(frozen=True)
class Call:
    method: str
    path: str
    parse: Callable[[httpx.Response], Any]
    params: dict[str, Any] | None = None
    json: Any = None
    data: dict[str, Any] | None = None
    uploads: tuple[Upload, ...] = ()
    headers: dict[str, str] = field(default_factory=dict)
    # Statuses that are answers, not errors (304 of a conditional poll, the
    # 503 of an unhealthy /health).
    accept: tuple[int, ...] = ()
    # Sending it twice does no harm (a read, or a submit with its key).
    repeatable: bool = False
    # False: the caller handles 429 and 503 itself (a wait, within its bound).
    retry_refusals: bool = True
    # Statuses that are answers only on a retry: a DELETE whose first answer
    # was lost finds the thing already gone (404).
    accept_on_retry: tuple[int, ...] = ()

    @contextlib.contextmanager
    def files(self) -> Iterator[list[tuple[str, tuple[str, IO[bytes] | bytes, str | None]]] | None]:
        """The multipart file parts, opened for one attempt."""
        if not self.uploads:
            yield None
            return
        with contextlib.ExitStack() as stack:
            parts: list[tuple[str, tuple[str, IO[bytes] | bytes, str | None]]] = []
            for upload in self.uploads:
                body: IO[bytes] | bytes = (
                    upload.content
                    if isinstance(upload.content, bytes)
                    else stack.enter_context(upload.content.open("rb"))
                )
                parts.append(("files", (upload.name, body, upload.content_type)))
            yield parts

    def answered(self, response: httpx.Response, attempt: int) -> bool:
        """Whether `response` is this call's answer rather than an error."""
        status = response.status_code
        return status < 300 or status in self.accept or (attempt > 0 and status in self.accept_on_retry)

    def request_options(self) -> dict[str, Any]:
        options: dict[str, Any] = {"params": self.params, "headers": self.headers}
        if self.json is not None:
            options["json"] = self.json
        if self.data is not None:
            options["data"] = self.data
        return options


def submit_headers(idempotency_key: str | None) -> dict[str, str]:
    """A submit's headers: its Idempotency-Key, made here unless given."""
    return {"Idempotency-Key": idempotency_key or str(uuid.uuid4())}


@dataclass(frozen=True)
class RetryPolicy:
    """How often and how long the client retries on its own.

    `max_retries` bounds the attempts after the first; `max_retry_after` is
    the longest Retry-After it will sleep through (a longer one is the
    caller's to decide on, so it is raised)."""

    max_retries: int = 3
    backoff: float = 0.5
    max_backoff: float = 8.0
    max_retry_after: float = 60.0

    def backoff_delay(self, attempt: int) -> float:
        # Full jitter, so clients refused together do not come back together.
        return random.uniform(0, min(self.max_backoff, self.backoff * 2**attempt))

    def after_error(self, call: Call, attempt: int) -> float | None:
        """Seconds before the next attempt after no answer came, or None."""
        if attempt >= self.max_retries or not call.repeatable:
            return None
        return self.backoff_delay(attempt)

    def after_answer(self, call: Call, attempt: int, response: httpx.Response) -> float | None:
        """Seconds before the next attempt after an error answer, or None."""
        status = response.status_code
        if attempt >= self.max_retries:
            return None
        if status in REFUSED and call.retry_refusals and (call.repeatable or _nothing_was_done(response)):
            wait = retry_after(response)
            if wait is None:
                return self.backoff_delay(attempt)
            return wait if wait <= self.max_retry_after else None
        if status in GATEWAY and call.repeatable:
            return self.backoff_delay(attempt)
        return None
