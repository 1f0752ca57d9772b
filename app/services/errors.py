"""Domain errors. Services raise these; app/api/problems.py renders them as RFC 9457
problem responses and the job runner records them on the job."""

from __future__ import annotations


class ServiceError(Exception):
    status = 500
    code = "internal_error"

    def __init__(
        self,
        detail: str,
        *,
        errors: list[dict[str, str]] | None = None,
        retry_after: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(detail)
        self.detail = detail
        self.errors = errors
        self.headers = dict(headers or {})
        if retry_after is not None:
            self.headers["Retry-After"] = str(retry_after)


class Unauthorized(ServiceError):
    status, code = 401, "unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="quarry"'})


class Forbidden(ServiceError):
    status, code = 403, "forbidden"


class QuotaExceeded(ServiceError):
    status, code = 429, "quota_exceeded"


class NotFound(ServiceError):
    status, code = 404, "not_found"


class Conflict(ServiceError):
    status, code = 409, "conflict"


class ValidationFailed(ServiceError):
    status, code = 422, "validation_error"


class PayloadTooLarge(ServiceError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ServiceError):
    status, code = 415, "unsupported_media_type"


class ServiceUnavailable(ServiceError):
    status, code = 503, "service_unavailable"


class PipelineUnavailable(ServiceError):
    status, code = 503, "pipeline_unavailable"


class JobFailure(Exception):
    """A job cannot finish; the message is shown to the client in `error`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
