"""Quarry: a search-and-ingestion job service."""

from __future__ import annotations

from typing import Any

from flask import Flask, send_from_directory
from swagger_ui_bundle import swagger_ui_path
from werkzeug.middleware.proxy_fix import ProxyFix

from app import logs, runtime
from app.config import Settings

__version__ = "0.1.0"


def create_app(settings: Settings | None = None) -> Flask:
    """The web app. `settings` (default: read from the environment) are bound
    for every service of this process, with the database, Redis and Celery
    they name (app/runtime.py)."""
    from app.api.bounded_json import BoundedJSONProvider
    from app.api.request_body import BoundedRequest

    settings = settings or Settings.from_env()
    runtime.configure(settings)
    logs.configure(settings.log_level, settings.log_format)
    app = Flask(__name__)
    app.request_class = BoundedRequest
    app.json = BoundedJSONProvider(app)
    app.config.update(_flask_config(settings))
    if settings.trusted_proxy_count:
        # X-Forwarded-For is believed only from this many proxies in front.
        # Wrapping wsgi_app is Flask's documented way to add WSGI middleware.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=settings.trusted_proxy_count, x_proto=1)  # type: ignore[method-assign]
    _register_routes(app)
    _register_request_hooks(app, settings)
    return app


def _register_routes(app: Flask) -> None:
    from app import cli, console
    from app.api import collections, documents, health, jobs, keys, metrics, pipelines, problems, webhooks
    from app.api.web_extensions import api

    api.init_app(app)
    for module in (collections, documents, jobs, pipelines, keys, webhooks, health, metrics):
        api.register_blueprint(module.blp)
    problems.register_error_handlers(app)
    cli.register(app)
    app.register_blueprint(console.blp)
    app.add_url_rule("/docs/assets/<path:filename>", "swagger_ui_assets", _swagger_asset)
    # The docs pages are /docs and /redoc; with a trailing slash they redirect there.
    for page in ("docs", "redoc"):
        app.add_url_rule(f"/{page}/", f"{page}_with_slash", redirect_to=f"/{page}")


def _register_request_hooks(app: Flask, settings: Settings) -> None:
    """Flask runs before_request hooks in the order registered and
    after_request hooks in reverse; the order below is the order of a
    request's life."""
    from app import auth
    from app.api import metrics, request_hooks
    from app.api.web_extensions import init_http_niceties, init_limiter

    metrics.observe_requests(app)
    request_hooks.register_request_context(app)
    # Identify the key, let the limiter count the request (per key, or per IP
    # without a valid key), then refuse bad keys and scopes.
    auth.register_identify(app)
    init_limiter(app)
    init_http_niceties(app, settings.cors_origins, settings.compress_min_bytes)
    auth.register_enforce(app)
    request_hooks.register_body_checks(app)


def _flask_config(settings: Settings) -> dict[str, Any]:
    # Defines the storage class the URL's scheme names.
    from app.api.rate_limit_storage import storage_uri

    return dict(
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
        API_SPEC_OPTIONS=_API_SPEC_OPTIONS,
        OPENAPI_SWAGGER_UI_CONFIG={"persistAuthorization": True},
        RATELIMIT_STORAGE_URI=storage_uri(settings.ratelimit_storage_url),
        RATELIMIT_STORAGE_OPTIONS={"socket_connect_timeout": 0.5, "socket_timeout": 0.5},
    )


_API_SPEC_OPTIONS = {
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
}


def _swagger_asset(filename: str):
    return send_from_directory(str(swagger_ui_path), filename)
