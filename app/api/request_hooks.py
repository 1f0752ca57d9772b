"""What every request goes through besides its route: its id, read-only
transactions for safe methods, and the body and query checks. create_app()
registers them in order."""

from __future__ import annotations

import re
import uuid

from flask import Flask, Response, g, request

from app import logs
from app.api import problems
from app.api.web_extensions import declares_query_arguments
from app.extensions import db

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:-]{1,128}$")
# Routes that take multipart bodies; every other body on /api/v1 is JSON.
_MULTIPART_ENDPOINTS = {"collections.upload_documents"}


def register_request_context(app: Flask) -> None:
    app.before_request(_reads_only_for_safe_methods)
    app.teardown_request(_end_reads_only)
    app.before_request(_assign_request_id)
    app.after_request(_echo_request_id)
    app.teardown_appcontext(_close_session)


def register_body_checks(app: Flask) -> None:
    app.before_request(_require_json_bodies)
    app.before_request(_refuse_undeclared_query_parameters)


def _reads_only_for_safe_methods() -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        g.reads_only = db.reads_only()
        g.reads_only.__enter__()


def _end_reads_only(_exc) -> None:
    if g.get("reads_only") is not None:
        g.pop("reads_only").__exit__(None, None, None)


def _assign_request_id() -> None:
    incoming = request.headers.get("X-Request-ID", "")
    g.request_id = incoming if _REQUEST_ID.match(incoming) else uuid.uuid4().hex
    logs.request_id_var.set(g.request_id)  # log lines, and the jobs this request submits


def _echo_request_id(response: Response) -> Response:
    response.headers["X-Request-ID"] = g.get("request_id") or uuid.uuid4().hex
    return response


def _close_session(_exc) -> None:
    db.remove_session()


def _require_json_bodies() -> Response | None:
    if request.method not in ("POST", "PUT", "PATCH") or not request.path.startswith("/api/"):
        return None
    if request.endpoint in _MULTIPART_ENDPOINTS:
        return None
    has_body = bool(request.content_length) or request.headers.get("Transfer-Encoding")
    if has_body and not request.is_json:
        return problems.problem(415, "Send the request body as application/json.")
    return None


def _refuse_undeclared_query_parameters() -> Response | None:
    from flask import current_app

    if not request.args or not request.path.startswith("/api/"):
        return None
    view = current_app.view_functions.get(request.endpoint or "")
    if view is None or declares_query_arguments(view):
        return None  # unknown routes 404; declared parameters are validated by the schema
    names = sorted(request.args)
    return problems.problem(
        422,
        f"This route takes no query parameters: {', '.join(names)}.",
        errors=[{"field": name, "message": "Unknown field."} for name in names],
    )
