"""Domain errors. Services raise these; app/errors.py renders them as RFC 9457
problem responses and the job runner records them on the job."""

from __future__ import annotations


class ServiceError(Exception):
    status = 500
    code = "internal_error"
    title = "Internal Server Error"

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
    status, code, title = 401, "unauthorized", "Unauthorized"

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer realm="quarry"'})


class Forbidden(ServiceError):
    status, code, title = 403, "forbidden", "Forbidden"


class QuotaExceeded(ServiceError):
    status, code, title = 429, "quota_exceeded", "Too Many Requests"


class NotFound(ServiceError):
    status, code, title = 404, "not_found", "Not Found"


class Conflict(ServiceError):
    status, code, title = 409, "conflict", "Conflict"


class ValidationFailed(ServiceError):
    status, code, title = 422, "validation_error", "Unprocessable Content"


class PayloadTooLarge(ServiceError):
    status, code, title = 413, "payload_too_large", "Content Too Large"


class UnsupportedMediaType(ServiceError):
    status, code, title = 415, "unsupported_media_type", "Unsupported Media Type"


class ServiceUnavailable(ServiceError):
    status, code, title = 503, "service_unavailable", "Service Unavailable"


class PipelineUnavailable(ServiceError):
    status, code, title = 503, "pipeline_unavailable", "Service Unavailable"


class JobFailure(Exception):
    """A job cannot finish; the message is shown to the client in `error`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
