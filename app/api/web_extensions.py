"""Web-only extensions: flask-smorest's Api, Flask-Limiter, CORS and
compression, which read the request; the runtime shared with the workers is
app/extensions.py."""

from __future__ import annotations

import logging
import time
from http import HTTPStatus

import flask_smorest
from apispec import BasePlugin
from apispec_oneofschema import MarshmallowPlugin
from apispec_oneofschema.plugin import OneofOpenAPIConverter
from flask import Flask, Response, g, request
from flask_compress import Compress
from flask_cors import CORS
from flask_limiter import Limiter
from flask_smorest import Api
from webargs.flaskparser import FlaskParser

from app.api import bounded_json
from app.api.held_requests import Refusal, refusals
from app.auth import presented_key
from app.extensions import settings

# Response headers, documented once (components/headers); routes name them.
RESPONSE_HEADERS = {
    "X-Request-ID": {
        "description": "The request's id (the client's own X-Request-ID when it sent a valid one); "
        "problem bodies and log lines quote it",
        "schema": {"type": "string"},
        "example": "4bf92f3577b34da6a3ce929d0e0e4736",
    },
    "X-RateLimit-Limit": {
        "description": "Requests the key (without a valid key: the client address) may make per window",
        "schema": {"type": "integer"},
        "example": 600,
    },
    "X-RateLimit-Remaining": {
        "description": "Requests left in the current window",
        "schema": {"type": "integer"},
        "example": 599,
    },
    "X-RateLimit-Reset": {
        "description": "When the current window ends, in seconds since the Unix epoch",
        "schema": {"type": "integer"},
        "example": 1767607260,
    },
    "Location": {
        "description": "The job to poll",
        "schema": {"type": "string"},
        "example": "/api/v1/jobs/9b2f6c1e4d5a4e0f8a7b6c5d4e3f2a1b",
    },
    "Retry-After": {
        "description": "Seconds until a poll of the job (or, on a 429 or 503, a retry) is worth making",
        "schema": {"type": "integer", "minimum": 0},
        "example": 1,
    },
    "ETag": {
        "description": "The job's version (weak); send it back in If-None-Match to get 304 while nothing changed",
        "schema": {"type": "string"},
        "example": 'W/"5d41402abc4b2a76b9719d911017c592"',
    },
    "Idempotent-Replayed": {
        "description": "An earlier request with this Idempotency-Key created the job; nothing new was created",
        "schema": {"type": "string", "enum": ["true"]},
        "example": "true",
    },
    "WWW-Authenticate": {
        "description": "How to authenticate: an API key as a Bearer token",
        "schema": {"type": "string"},
        "example": 'Bearer realm="quarry"',
    },
}
_RATE_LIMIT_HEADERS = ("X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset")


def response_headers(*names: str) -> dict[str, str]:
    """A route's documented response headers, by name (see RESPONSE_HEADERS)."""
    return {name: name for name in names}


class _Converter(OneofOpenAPIConverter):
    """apispec documents a nullable nested object (OpenAPI 3.0) as anyOf the
    object and `{type: object, nullable: true}`, a branch any object matches;
    `enum: [null]` narrows that branch to null, as the field means."""

    def field2nullable(self, field, ret) -> dict:
        attributes = super().field2nullable(field, ret)
        for branch in attributes.get("anyOf", []):
            if branch == {"type": "object", "nullable": True}:
                branch["enum"] = [None]
        return attributes


class _MarshmallowPlugin(MarshmallowPlugin):
    Converter = _Converter


class CommonResponsesPlugin(BasePlugin):
    """Documents what every route shares: on /api/v1, 401 and 403 from
    authentication, 429 from rate limits and the rate-limit headers; every
    error as a problem body; X-Request-ID on every answer; Retry-After on
    429s and 503s. Marks the routes outside /api/v1 as public."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        api_route = bool(path and path.startswith("/api/"))
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            if api_route:
                responses.setdefault("401", "UNAUTHORIZED")
                responses.setdefault("403", "FORBIDDEN")
                responses.setdefault("429", "TOO_MANY_REQUESTS")
            else:
                operation["security"] = []
            for status, response in responses.items():
                if isinstance(response, dict) and "$ref" not in response:
                    _document_response(str(status), response, api_route)


def _document_response(status: str, response: dict, api_route: bool) -> None:
    """A route's own response; QuarryApi documents the shared ones."""
    from app.api.problems import PROBLEM_CONTENT_TYPE

    names = ["X-Request-ID", *(_RATE_LIMIT_HEADERS if api_route else ())]
    if status in ("429", "503"):
        names.append("Retry-After")
    headers = response.setdefault("headers", {})
    for name in names:
        headers.setdefault(name, name)
    if status[0] in "45" and "content" not in response:
        response["content"] = {PROBLEM_CONTENT_TYPE: {"schema": "Problem"}}


class _Parser(FlaskParser):
    # Query parameters follow the schema's own `unknown` (RAISE for every
    # request schema), as bodies do, instead of webargs' EXCLUDE.
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}

    def _raw_load_json(self, req):
        try:
            return bounded_json.bounded(lambda: super(_Parser, self)._raw_load_json(req), req.get_data(cache=True))
        except bounded_json.TooDeep as exc:
            raise bounded_json.as_problem(exc) from None


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint that refuses query parameters a route does
    not declare (see declares_query_arguments)."""

    ARGUMENTS_PARSER = _Parser()

    def arguments(self, schema, *, location="json", **kwargs):
        decorator = super().arguments(schema, location=location, **kwargs)
        if location != "query":
            return decorator

        def declare(func):
            wrapped = decorator(func)
            wrapped.declares_query_arguments = True
            return wrapped

        return declare


def declares_query_arguments(view) -> bool:
    """Whether a view takes query parameters; the app refuses them elsewhere."""
    return getattr(view, "declares_query_arguments", False)


class QuarryApi(Api):
    """flask-smorest's Api with RFC 9457 problem bodies for every error."""

    def __init__(self) -> None:
        from app.api.problems import ProblemSchema

        self.ERROR_SCHEMA = ProblemSchema
        super().__init__(
            spec_kwargs={
                # Documents a marshmallow-oneofschema OneOfSchema (the job) as oneOf with a discriminator.
                "marshmallow_plugin": _MarshmallowPlugin(),
                "extra_plugins": [CommonResponsesPlugin()],
            }
        )

    def handle_http_exception(self, error):
        from app.api.problems import handle_http_exception

        return handle_http_exception(error)

    def _register_responses(self):
        from app.api.problems import PROBLEM_CONTENT_TYPE, problem_title

        super()._register_responses()
        components = self.spec.components
        for name, header in RESPONSE_HEADERS.items():
            components.header(name, header)
        # The shared responses: errors are application/problem+json bodies,
        # described by the problem's own title.
        for name, response in [*components.responses_lazy.items(), *components.responses.items()]:
            if "content" in response and "application/json" in response["content"]:
                response["content"] = {PROBLEM_CONTENT_TYPE: response["content"]["application/json"]}
            status = HTTPStatus.__members__.get(name)
            if status is not None and status >= 400:
                response["description"] = problem_title(status)
            headers = response.setdefault("headers", {})
            for header in ["X-Request-ID", *_HEADERS_OF_SHARED_RESPONSES.get(name, ())]:
                # Registered components are already resolved: refer explicitly.
                headers.setdefault("ETag" if header == "ETAG" else header, components.get_ref("header", header))


# Beside X-Request-ID; these shared responses are given on /api/v1 routes only.
_HEADERS_OF_SHARED_RESPONSES = {
    "UNAUTHORIZED": ("WWW-Authenticate", *_RATE_LIMIT_HEADERS),
    "FORBIDDEN": _RATE_LIMIT_HEADERS,
    "TOO_MANY_REQUESTS": ("Retry-After", *_RATE_LIMIT_HEADERS),
    "UNPROCESSABLE_ENTITY": _RATE_LIMIT_HEADERS,
    "NOT_MODIFIED": ("ETAG", *_RATE_LIMIT_HEADERS),
}


def _rate_limit_key() -> str:
    """Per key when the request carries a valid one, else per client IP
    (behind TRUSTED_PROXY_COUNT proxies, ProxyFix has set remote_addr)."""
    principal = g.get("principal")
    return f"key:{principal.key_id}" if principal else f"ip:{request.remote_addr}"


def _rate_limit_value() -> str:
    principal = g.get("principal")
    return settings.rate_limits[principal.tier if principal else "anonymous"]


def _refusal_key() -> str:
    # With the limit itself: a key moved to another tier is the limiter's to judge again.
    return f"{_rate_limit_key()} {_rate_limit_value()}"


def _not_api_request() -> bool:
    # A CORS preflight carries no key and is answered without touching data.
    return not request.path.startswith("/api/") or request.method == "OPTIONS"


class LimiterErrorCounter(logging.Handler):
    """Counts the storage errors Flask-Limiter swallows (it logs each one), so
    /health can show that requests are going through unlimited."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


limiter_errors = LimiterErrorCounter()

api = QuarryApi()
limiter = Limiter(
    key_func=_rate_limit_key,
    # One budget per key (per client IP without a valid key) shared by every
    # /api/v1 route; default_limits would count each route separately.
    application_limits=[_rate_limit_value],
    application_limits_exempt_when=_not_api_request,
    # A conditional poll answered 304 costs nothing: polling politely is free.
    application_limits_deduct_when=lambda response: response.status_code != 304,
    # The X-RateLimit-* headers are written by rate_limit_headers(): Flask-
    # Limiter's own would also overwrite every Retry-After with its window's
    # reset, and on /api/v1 that header is the answer's own (a poll hint, a
    # back-off).
    headers_enabled=False,
    # If the limiter's Redis is down the API keeps answering, unlimited;
    # Flask-Limiter logs each failure (and limiter_errors counts them).
    swallow_errors=True,
    key_prefix="quarry",
    # Two counters per key, read and written by one script each: a counted
    # request costs the check, the hit and the headers' read, one round trip
    # each (fixed-window reads the headers' count and expiry in two).
    strategy="sliding-window-counter",
)


# What a browser script may send and read across origins.
_CORS_ALLOW_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Request-ID"]
_CORS_EXPOSE_HEADERS = [
    "Location",
    "Retry-After",
    "ETag",
    "X-Request-ID",
    "Idempotent-Replayed",
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Reset",
]

compress = Compress()


def init_limiter(app: Flask) -> None:
    """The rate limits, their headers, and the count of the storage errors
    the limiter swallows."""
    limiter_logger = logging.getLogger("flask-limiter")
    if limiter_errors not in limiter_logger.handlers:
        limiter_logger.addHandler(limiter_errors)
    # Registered first so that it runs after the limiter's own after_request
    # (Flask runs them in reverse), which counts a request that was not a 304.
    app.after_request(rate_limit_headers)
    # Before the limiter's check: a key it refused a moment ago is refused again from memory.
    app.before_request(refuse_remembered)
    limiter.init_app(app)


def refuse_remembered() -> Response | None:
    """The 429 the limiter gave this key, again, while its window is still
    full (app/api/held_requests.py); nothing when it is not."""
    if _not_api_request():
        return None
    refusal = refusals.current(_refusal_key())
    if refusal is None:
        return None
    from app.api.problems import problem

    headers = _limit_headers(refusal.limit, 0, refusal.until)
    return problem(429, refusal.detail, headers={**headers, "Retry-After": _retry_after(refusal.until)})


def rate_limit_headers(response: Response) -> Response:
    """X-RateLimit-* on every /api/v1 answer the limiter counted, and a 429's
    Retry-After: when its window ends."""
    current = limiter.current_limit
    if current is None or not request.path.startswith("/api/"):
        return response
    try:
        reset_at = current.reset_at
        remaining = current.remaining
    except Exception as exc:  # its storage is down: the request went through unlimited
        limiter_errors.count += 1
        logging.getLogger(__name__).warning("rate-limit headers unavailable: %s", exc)
        return response
    response.headers.update(_limit_headers(current.limit.amount, remaining, reset_at))
    if response.status_code == 429 and current.breached:
        response.headers["Retry-After"] = _retry_after(reset_at)
        # The limiter's own 429 description (no error_message is configured).
        detail = str(current.limit)
        # The presented key too, when valid: the web worker holds its next requests back.
        presented = presented_key() if g.get("principal") else None
        refusals.remember(_refusal_key(), Refusal(reset_at, current.limit.amount, detail), presented)
    return response


def _limit_headers(limit: int, remaining: int, reset_at: float) -> dict[str, str]:
    return {"X-RateLimit-Limit": str(limit), "X-RateLimit-Remaining": str(remaining),
            "X-RateLimit-Reset": str(int(reset_at))}  # fmt: skip


def _retry_after(reset_at: float) -> str:
    return str(max(1, int(reset_at - time.time())))


def init_http_niceties(app: Flask, cors_origins: tuple[str, ...], compress_min_bytes: int) -> None:
    """CORS on /api/v1 when origins are configured (off by default), and gzip
    for large JSON and /metrics answers. Call after the limiter: Flask runs
    after_request hooks in reverse, so compression (and the 304 it may turn a
    gzipped answer into) happens before the limiter decides what to count."""
    if cors_origins:
        CORS(
            app,
            resources={r"/api/*": {"origins": "*" if "*" in cors_origins else list(cors_origins)}},
            allow_headers=_CORS_ALLOW_HEADERS,
            expose_headers=_CORS_EXPOSE_HEADERS,
            max_age=600,
        )
    app.config.update(
        COMPRESS_ALGORITHM=["gzip"],
        COMPRESS_MIN_SIZE=compress_min_bytes,
        COMPRESS_MIMETYPES=["application/json", "application/problem+json", "text/plain"],
        COMPRESS_STREAMS=False,
    )
    compress.init_app(app)
