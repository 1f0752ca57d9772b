"""RFC 9457 problem details: the one way every error leaves the API."""

from __future__ import annotations

import logging
from http import HTTPStatus
from typing import Any

import marshmallow as ma
from flask import Flask, Response, current_app, g, json, request
from sqlalchemy import exc as sa_exc
from werkzeug.exceptions import HTTPException

from app.services.errors import ServiceError

log = logging.getLogger(__name__)

PROBLEM_CONTENT_TYPE = "application/problem+json"

CODE_FOR_STATUS = {
    400: "validation_error",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    408: "request_timeout",
    409: "conflict",
    412: "precondition_failed",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_error",
    429: "rate_limited",
    500: "internal_error",
    503: "service_unavailable",
}


# One title per status: RFC 9110's reason phrases (Python before 3.13 still
# has the older ones for 413 and 422).
_TITLES = {413: "Content Too Large", 422: "Unprocessable Content"}


def problem_title(status: int) -> str:
    try:
        return _TITLES.get(status) or HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class FieldErrorSchema(ma.Schema):
    field = ma.fields.String(
        required=True,
        metadata={
            "description": "The field, nested names joined with dots (`body` for the whole body)",
            "example": "documents.0.text",
        },
    )
    message = ma.fields.String(
        required=True, metadata={"description": "What is wrong with it", "example": "Text must not be blank."}
    )


class ProblemSchema(ma.Schema):
    """Documents the problem body in the OpenAPI spec."""

    type = ma.fields.String(
        required=True,
        metadata={"description": "URI naming the problem type", "example": "urn:quarry:problem:validation_error"},
    )
    title = ma.fields.String(
        required=True,
        metadata={
            "description": "Short summary of the problem type: one per status",
            "example": "Unprocessable Content",
        },
    )
    status = ma.fields.Integer(required=True, metadata={"description": "HTTP status code", "example": 422})
    detail = ma.fields.String(
        required=True,
        metadata={"description": "What went wrong, for a person", "example": "The request has invalid fields: top_k."},
    )
    code = ma.fields.String(
        required=True, metadata={"description": "Stable machine-readable error code", "example": "validation_error"}
    )
    request_id = ma.fields.String(
        required=True,
        allow_none=True,
        metadata={"description": "The X-Request-ID of the request", "example": "4bf92f3577b34da6a3ce929d0e0e4736"},
    )
    errors = ma.fields.List(
        ma.fields.Nested(FieldErrorSchema),
        metadata={
            "description": "On validation failures: each invalid field",
            "example": [
                {"field": "top_k", "message": "Must be greater than or equal to 1 and less than or equal to 100."}
            ],
        },
    )


def problem(
    status: int,
    detail: str,
    *,
    code: str | None = None,
    errors: list[dict[str, str]] | None = None,
    headers: dict[str, Any] | None = None,
) -> Response:
    code = code or CODE_FOR_STATUS.get(status, "error")
    body: dict[str, Any] = {
        "type": f"urn:quarry:problem:{code}",
        "title": problem_title(status),
        "status": status,
        "detail": detail,
        "code": code,
        "request_id": g.get("request_id"),
    }
    if errors is not None:
        body["errors"] = errors
    response = Response(json.dumps(body), status=status, mimetype=PROBLEM_CONTENT_TYPE)
    for name, value in (headers or {}).items():
        response.headers[name] = str(value)
    return response


_LOCATIONS = {"json", "query", "form", "files", "headers", "view_args", "path", "cookies"}


def flatten_validation_messages(messages: Any) -> list[dict[str, str]]:
    """marshmallow/webargs messages ({location: {field: [msg]}} or {field: [msg]})
    as [{field, message}], nested fields joined with dots."""
    if isinstance(messages, dict) and messages and set(messages) <= _LOCATIONS:
        return [e for value in messages.values() for e in _flatten(value, "")]
    return _flatten(messages, "")


def _flatten(messages: Any, prefix: str) -> list[dict[str, str]]:
    if isinstance(messages, dict):
        out = []
        for key, value in messages.items():
            name = prefix or "body" if key == "_schema" else (f"{prefix}.{key}" if prefix else str(key))
            out.extend(_flatten(value, name))
        return out
    if isinstance(messages, list):
        out = []
        for item in messages:
            if isinstance(item, str):
                out.append({"field": prefix or "body", "message": item})
            else:
                out.extend(_flatten(item, prefix))
        return out
    return [{"field": prefix or "body", "message": str(messages)}]


def _discard_unread_body(limit: int) -> None:
    """Read and drop what is left of a refused request body (up to `limit`
    bytes), so the client's keep-alive connection is clean for its next
    request; gunicorn's own drain of a kept-alive socket can fail mid-body."""
    stream = request.environ.get("wsgi.input")
    remaining = request.content_length or 0
    if stream is None or not 0 < remaining <= limit:
        return
    try:
        while remaining > 0:
            block = stream.read(min(remaining, 256 * 1024))
            if not block:
                break
            remaining -= len(block)
    except (OSError, HTTPException):  # the client stopped sending, or sent less than it declared
        pass


def handle_http_exception(error: HTTPException) -> Response:
    """Werkzeug and flask-smorest errors (abort, routing, webargs validation)."""
    status = error.code or 500
    if status == 413:
        _discard_unread_body(4 * (current_app.config.get("MAX_CONTENT_LENGTH") or 0))
    data = getattr(error, "data", None) or {}
    headers = {k: v for k, v in error.get_headers() if k.lower() != "content-type"}
    headers.update(data.get("headers") or {})
    errors = None
    if "messages" in data or "errors" in data:
        errors = flatten_validation_messages(data.get("errors") or data.get("messages"))
    detail = data.get("message") or error.description or problem_title(status)
    if status == 422 and errors:
        detail = "The request has invalid fields: " + ", ".join(sorted({e["field"] for e in errors})) + "."
    if status == 400 and errors:
        detail = "; ".join(e["message"] for e in errors)
        errors = None
    if status >= 500:
        log.error("HTTP %s: %s", status, detail)
    return problem(status, detail, errors=errors, headers=headers)


def handle_service_error(error: ServiceError) -> Response:
    return problem(
        error.status,
        error.detail,
        code=error.code,
        errors=error.errors,
        headers=error.headers,
    )


def handle_validation_error(error: ma.ValidationError) -> Response:
    """A schema loaded by hand in a view (bodies webargs cannot parse for us)."""
    errors = flatten_validation_messages(error.messages)
    detail = "The request has invalid fields: " + ", ".join(sorted({e["field"] for e in errors})) + "."
    return problem(422, detail, errors=errors)


DATABASE_RETRY_AFTER = 5


def handle_database_unavailable(error: Exception) -> Response:
    """The database does not answer (down, restarting, unreachable, its pool
    exhausted): the client may retry, as with a broker outage."""
    log.error("database unavailable: %s", str(error).splitlines()[0] if str(error) else type(error).__name__)
    return problem(
        503,
        "The database is unavailable. Nothing was changed; try again shortly.",
        code="service_unavailable",
        headers={"Retry-After": DATABASE_RETRY_AFTER},
    )


def handle_unexpected(error: Exception) -> Response:
    log.exception("unhandled error")
    return problem(500, "The server failed to handle the request. It has been logged.")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(HTTPException, handle_http_exception)
    app.register_error_handler(ServiceError, handle_service_error)
    app.register_error_handler(ma.ValidationError, handle_validation_error)
    for unavailable in (sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError):
        app.register_error_handler(unavailable, handle_database_unavailable)
    app.register_error_handler(Exception, handle_unexpected)
