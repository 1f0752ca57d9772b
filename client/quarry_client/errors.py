"""One exception hierarchy, read from the service's problem+json answers.

Every error of a call is a `QuarryError`; which subclass says what a caller
can do about it (retry later, fix the request, give up). Job outcomes that a
wait ends on (`JobFailed`, `JobCancelled`, `WaitTimeout`) are QuarryErrors too,
so one `except QuarryError` covers a whole submit-and-wait."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

if TYPE_CHECKING:
    from quarry_client.models import Job


@dataclass(frozen=True)
class FieldError:
    """One invalid field of a 422: which (`documents.0.text`) and why."""

    field: str
    message: str


class QuarryError(Exception):
    """The service refused or failed a request (`status` is 0 when no
    answer came at all)."""

    def __init__(
        self,
        detail: str,
        *,
        status: int = 0,
        code: str = "error",
        request_id: str | None = None,
        errors: list[FieldError] | None = None,
        problem: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.code = code
        self.request_id = request_id
        self.errors = errors or []
        self.problem = problem or {}

    def __str__(self) -> str:
        text = self.detail
        if self.errors:
            text += " (" + "; ".join(f"{e.field}: {e.message}" for e in self.errors) + ")"
        if self.request_id:
            text += f" [request {self.request_id}]"
        return text


class TransportError(QuarryError):
    """No answer: the connection failed, dropped or timed out (after the
    client's own retries)."""


class BadRequest(QuarryError):
    """400: the body could not be read at all."""


class ValidationError(QuarryError):
    """422: fields are invalid; `errors` names them."""


class Unauthorized(QuarryError):
    """401: the API key is missing, unknown, revoked or expired."""


class Forbidden(QuarryError):
    """403: the key lacks the scope this call needs."""


class NotFound(QuarryError):
    """404: no such object for this key's tenant."""


class Conflict(QuarryError):
    """409: e.g. the name exists, the job is already final, or an
    Idempotency-Key was reused for another request."""


class PayloadTooLarge(QuarryError):
    """413: a file or the body is over MAX_UPLOAD_MB."""


class UnsupportedMediaType(QuarryError):
    """415: a file type the service does not ingest."""


class RetryLater(QuarryError):
    """Refused for now; `retry_after` (seconds) says when to try again."""

    def __init__(self, detail: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(detail, **kwargs)
        self.retry_after = retry_after


class RateLimited(RetryLater):
    """429: over the key's rate limit or in-flight quota."""


class Unavailable(RetryLater):
    """503: a dependency is down, the pipeline is unavailable, or the service
    sheds load."""


class ServerError(QuarryError):
    """500 or another 5xx the client could not retry away."""


class GatewayError(ServerError):
    """502 or 504 from a proxy in front of the service: the request may or
    may not have reached it."""


class JobFailed(QuarryError):
    """A waited-for job ended `failed`; `code` is the job's error code."""

    def __init__(self, job: Job) -> None:
        error = job.error or {}
        super().__init__(
            f"job {job.id} failed: {error.get('message', 'no reason given')}",
            code=error.get("code", "job_failed"),
        )
        self.job = job


class JobCancelled(QuarryError):
    """A waited-for job ended `cancelled`."""

    def __init__(self, job: Job) -> None:
        super().__init__(f"job {job.id} was cancelled", code="cancelled")
        self.job = job


class WaitTimeout(QuarryError):
    """A job was not final by the wait's bound; `job` is the last one seen."""

    def __init__(self, job: Job, timeout: float) -> None:
        super().__init__(f"job {job.id} still {job.status} after {timeout:g} s", code="wait_timeout")
        self.job = job
        self.timeout = timeout


_BY_STATUS: dict[int, type[QuarryError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    429: RateLimited,
    502: GatewayError,
    503: Unavailable,
    504: GatewayError,
}


def retry_after(response: httpx.Response) -> float | None:
    """The answer's Retry-After in seconds (the service sends seconds)."""
    try:
        return max(0.0, float(response.headers["Retry-After"]))
    except (KeyError, ValueError):
        return None


def error_from_response(response: httpx.Response) -> QuarryError:
    """The QuarryError an error answer stands for, from its problem details
    (or from the status alone when the body is not problem+json, as from a
    proxy in front of the service)."""
    try:
        problem = response.json()
        if not isinstance(problem, dict):
            problem = {}
    except ValueError:
        problem = {}
    status = response.status_code
    kind = _BY_STATUS.get(status, ServerError if status >= 500 else QuarryError)
    kwargs: dict[str, Any] = {
        "status": status,
        "code": str(problem.get("code") or f"http_{status}"),
        "request_id": problem.get("request_id") or response.headers.get("X-Request-ID"),
        "errors": [
            FieldError(str(e.get("field", "")), str(e.get("message", "")))
            for e in problem.get("errors") or []
            if isinstance(e, dict)
        ],
        "problem": problem,
    }
    if issubclass(kind, RetryLater):
        kwargs["retry_after"] = retry_after(response)
    detail = str(problem.get("detail") or problem.get("title") or response.reason_phrase or f"HTTP {status}")
    return kind(detail, **kwargs)
