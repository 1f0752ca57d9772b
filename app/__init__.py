"""Quarry: a search-and-ingestion job service."""

from __future__ import annotations

import re
import uuid

from flask import Flask, g, request, send_from_directory
from swagger_ui_bundle import swagger_ui_path
from werkzeug.middleware.proxy_fix import ProxyFix

from app import logs
from app.config import Settings
from app.config import settings as default_settings

__version__ = "0.1.0"

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Routes that take multipart bodies; every other body on /api/v1 is JSON.
_MULTIPART_ENDPOINTS = {"collections.upload_documents"}


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or default_settings
    logs.configure(settings.log_level, settings.log_format)
    app = Flask(__name__)
    app.config.update(
        QUARRY_VERSION=__version__,
        MAX_CONTENT_LENGTH=settings.max_upload_bytes,
        MAX_FORM_MEMORY_SIZE=settings.max_upload_bytes,
        API_TITLE="Quarry",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        # Served from packages installed with the project: no CDN.
        OPENAPI_SWAGGER_UI_URL="/docs/assets/",
        OPENAPI_REDOC_PATH="redoc",
        OPENAPI_REDOC_URL="/static/redoc/redoc.standalone.js",
        API_SPEC_OPTIONS={
            "info": {
                "description": "Submit searches and document uploads; get a job id at once; "
                "poll the job for its result. Every /api/v1 route takes an API key as "
                "`Authorization: Bearer <key>` or `X-API-Key: <key>`.",
            },
            "security": [{"bearerAuth": []}, {"apiKeyHeader": []}],
            "components": {
                "securitySchemes": {
                    "bearerAuth": {"type": "http", "scheme": "bearer", "bearerFormat": "qk_…"},
                    "apiKeyHeader": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
                }
            },
        },
        OPENAPI_SWAGGER_UI_CONFIG={"persistAuthorization": True},
        RATELIMIT_STORAGE_URI=settings.ratelimit_storage_url,
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    )
    if settings.trusted_proxy_count:
        # X-Forwarded-For is believed only from this many proxies in front.
        # Wrapping wsgi_app is Flask's documented way to add WSGI middleware.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_count, x_proto=1)  # type: ignore[method-assign]

    from app import auth, cli, errors
    from app.api import (
        collections,
        documents,
        health,
        jobs,
        keys,
        metrics,
        pipelines,
        webhooks,
    )
    from app.api.extensions import BoundedRequest, api, declares_query_arguments, init_http_niceties, limiter
    from app.extensions import db, init_runtime

    app.request_class = BoundedRequest
    init_runtime(settings.normalized_database_url(), settings.redis_url)
    settings.upload_dir.mkdir(parents=True, exist_ok=True)

    api.init_app(app)
    for blueprint in (
        collections.blp,
        documents.blp,
        jobs.blp,
        pipelines.blp,
        keys.blp,
        webhooks.blp,
        health.blp,
        metrics.blp,
    ):
        api.register_blueprint(blueprint)
    errors.register_error_handlers(app)
    cli.register(app)

    app.add_url_rule("/docs/assets/<path:filename>", "swagger_ui_assets", _swagger_asset)
    # The docs pages are /docs and /redoc; with a trailing slash they redirect there.
    for page in ("docs", "redoc"):
        app.add_url_rule(f"/{page}/", f"{page}_with_slash", redirect_to=f"/{page}")

    metrics.observe_requests(app)

    @app.before_request
    def _reads_only_for_safe_methods():
        if request.method in ("GET", "HEAD", "OPTIONS"):
            g.reads_only = db.reads_only()
            g.reads_only.__enter__()

    @app.teardown_request
    def _end_reads_only(_exc):
        if g.get("reads_only") is not None:
            g.pop("reads_only").__exit__(None, None, None)

    @app.before_request
    def _assign_request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
        logs.request_id_var.set(g.request_id)  # log lines, and the jobs this request submits

    # Order matters: identify the key, let the limiter count the request (per
    # key, or per IP without a valid key), then refuse bad keys and scopes.
    auth.register_identify(app)
    # Registered before the limiter, so it runs after the limiter's own
    # after_request (Flask runs them in reverse): Flask-Limiter puts its window
    # reset into Retry-After on every response, but outside a 429 the header is
    # ours (a poll hint on 202s and job reads, a back-off on 503s).
    app.after_request(_settle_retry_after)
    limiter.init_app(app)
    init_http_niceties(app, settings.cors_origins, settings.compress_min_bytes)
    auth.register_enforce(app)

    @app.before_request
    def _require_json_bodies():
        if request.method not in ("POST", "PUT", "PATCH") or not request.path.startswith("/api/"):
            return None
        if request.endpoint in _MULTIPART_ENDPOINTS:
            return None
        has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding")
        if has_body and not request.is_json:
            return errors.problem(415, "Send the request body as application/json.")
        return None

    @app.before_request
    def _refuse_undeclared_query_parameters():
        if not request.args or not request.path.startswith("/api/"):
            return None
        view = app.view_functions.get(request.endpoint or "")
        if view is None or declares_query_arguments(view):
            return None  # unknown routes 404; declared parameters are validated by the schema
        names = sorted(request.args)
        return errors.problem(
            422,
            f"This route takes no query parameters: {', '.join(names)}.",
            errors=[{"field": name, "message": "Unknown field."} for name in names],
        )

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
        return response

    @app.teardown_appcontext
    def _close_session(_exc):
        db.remove_session()

    return app


def _settle_retry_after(response):
    if not request.path.startswith("/api/"):
        return response  # the limiter does not touch other routes
    wanted = g.get("retry_after")
    if wanted is not None:
        response.headers["Retry-After"] = str(wanted)
    elif response.status_code != 429:
        response.headers.pop("Retry-After", None)
    return response


def _swagger_asset(filename: str):
    return send_from_directory(str(swagger_ui_path), filename)
