"""Quarry: a search-and-ingestion job service."""

from __future__ import annotations

import logging
import re
import uuid

from flask import Flask, g, request
from swagger_ui_bundle import swagger_ui_path

from app.config import Settings, settings as default_settings

__version__ = "0.1.0"

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Routes that take multipart bodies; every other body on /api/v1 is JSON.
_MULTIPART_ENDPOINTS = {"collections.upload_documents"}


def create_app(settings: Settings | None = None) -> Flask:
    settings = settings or default_settings
    logging.basicConfig(
        level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
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
                "poll the job for its result.",
            },
        },
    )

    from app import cli, errors
    from app.api import collections, health, jobs
    from app.extensions import api, init_runtime

    init_runtime(settings.normalized_database_url(), settings.redis_url)
    settings.upload_dir.mkdir(parents=True, exist_ok=True)

    api.init_app(app)
    for blueprint in (collections.blp, jobs.blp, health.blp):
        api.register_blueprint(blueprint)
    errors.register_error_handlers(app)
    cli.register(app)

    app.add_url_rule(
        "/docs/assets/<path:filename>", "swagger_ui_assets", _swagger_asset
    )

    @app.before_request
    def _assign_request_id():
        incoming = request.headers.get("X-Request-ID", "")
        g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex

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

    @app.after_request
    def _echo_request_id(response):
        response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
        return response

    @app.teardown_appcontext
    def _close_session(_exc):
        from app.extensions import db

        db.session.remove()

    return app


def _swagger_asset(filename: str):
    from flask import send_from_directory

    return send_from_directory(str(swagger_ui_path), filename)
