"""Web-only extensions: flask-smorest's Api, Flask-Limiter, CORS and
compression, which read the request; the runtime shared with the workers is
app/extensions.py."""

from __future__ import annotations

import logging

import flask_smorest
from apispec import BasePlugin
from flask import Flask, g, request
from flask_compress import Compress
from flask_cors import CORS
from flask_limiter import Limiter
from flask_smorest import Api
from webargs.flaskparser import FlaskParser


class CommonResponsesPlugin(BasePlugin):
    """Documents the answers every /api/v1 route can give: 401 and 403 from
    authentication, 429 from rate limits; and marks /health as public."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            if path and path.startswith("/api/"):
                responses.setdefault("401", "UNAUTHORIZED")
                responses.setdefault("403", "FORBIDDEN")
                responses.setdefault("429", "TOO_MANY_REQUESTS")
            else:
                operation["security"] = []


class _Parser(FlaskParser):
    # Query parameters follow the schema's own `unknown` (RAISE for every
    # request schema), as bodies do, instead of webargs' EXCLUDE.
    DEFAULT_UNKNOWN_BY_LOCATION = {**FlaskParser.DEFAULT_UNKNOWN_BY_LOCATION, "query": None, "querystring": None}


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
        from app.errors import ProblemSchema

        self.ERROR_SCHEMA = ProblemSchema
        super().__init__(spec_kwargs={"extra_plugins": [CommonResponsesPlugin()]})

    def handle_http_exception(self, error):
        from app.errors import handle_http_exception

        return handle_http_exception(error)

    def _register_responses(self):
        from app.errors import PROBLEM_CONTENT_TYPE

        super()._register_responses()
        # Error responses are documented as application/problem+json.
        components = self.spec.components
        for response in [*components.responses_lazy.values(), *components.responses.values()]:
            if "content" in response and "application/json" in response["content"]:
                response["content"] = {PROBLEM_CONTENT_TYPE: response["content"]["application/json"]}


def _rate_limit_key() -> str:
    """Per key when the request carries a valid one, else per client IP
    (behind TRUSTED_PROXY_COUNT proxies, ProxyFix has set remote_addr)."""
    principal = g.get("principal")
    return f"key:{principal.key_id}" if principal else f"ip:{request.remote_addr}"


def _rate_limit_value() -> str:
    from app.config import settings

    principal = g.get("principal")
    return settings.rate_limits[principal.tier if principal else "anonymous"]


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
logging.getLogger("flask-limiter").addHandler(limiter_errors)

api = QuarryApi()
limiter = Limiter(
    key_func=_rate_limit_key,
    # One budget per key (per client IP without a valid key) shared by every
    # /api/v1 route; default_limits would count each route separately.
    application_limits=[_rate_limit_value],
    application_limits_exempt_when=_not_api_request,
    # A conditional poll answered 304 costs nothing: polling politely is free.
    application_limits_deduct_when=lambda response: response.status_code != 304,
    headers_enabled=True,
    # If the limiter's Redis is down the API keeps answering, unlimited;
    # Flask-Limiter logs each failure (and app/errors.py counts them).
    swallow_errors=True,
    key_prefix="quarry",
    strategy="fixed-window",
)


# What a browser script may send and read across origins.
_CORS_ALLOW_HEADERS = ["Authorization", "X-API-Key", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Request-ID"]
_CORS_EXPOSE_HEADERS = [
    "Location", "Retry-After", "ETag", "X-Request-ID", "Idempotent-Replayed",
    "X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset",
]

compress = Compress()


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
