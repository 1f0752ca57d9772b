"""Who is calling, and may they? API keys on every /api/v1 route.

Three steps around Flask-Limiter's own check, so that requests without a
valid key are rate limited per IP *before* they learn the key was wrong:
identify (before the limiter) → limiter → enforce (after the limiter).
"""

from __future__ import annotations

from flask import Flask, g, request

from app.extensions import db
from app.services import keys
from app.services.errors import Forbidden, Unauthorized

API_PATH = "/api/"


def _needs_key() -> bool:
    # A CORS preflight (OPTIONS) never carries credentials; Flask answers it
    # with the allowed methods only, so it reveals nothing.
    return request.path.startswith(API_PATH) and request.method != "OPTIONS"


def presented_key() -> str | None:
    """The API key the request carries, as sent ("malformed" for a header that is not Bearer)."""
    header = request.headers.get("Authorization")
    if header:
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value.strip():
            return "malformed"  # never matches the key format
        return value.strip()
    return request.headers.get("X-API-Key") or None


def identify() -> None:
    g.principal = None
    g.auth_error = None
    if not _needs_key():
        return
    try:
        g.principal = keys.authenticate(db.session, presented_key())
    except Unauthorized as error:
        g.auth_error = error
    finally:
        # End the read: on SQLite an open transaction holds the write lock.
        db.session.rollback()


# Reads that hand out a secret: a read-only key may not forge signatures.
_SECRET_READS = {"webhooks.tenant_secret"}


def required_scope() -> str:
    if (request.blueprint or "") == "keys":
        return "admin"
    if request.endpoint in _SECRET_READS:
        return "write"
    return "read" if request.method in ("GET", "HEAD", "OPTIONS") else "write"


def enforce() -> None:
    if not _needs_key():
        return
    if g.auth_error is not None:
        raise g.auth_error
    scope = required_scope()
    if scope not in g.principal.scopes:
        raise Forbidden(f"This API key lacks the `{scope}` scope this request needs.")


def current_principal() -> keys.Principal:
    return g.principal


def current_tenant_id() -> str:
    return g.principal.tenant_id


def register_identify(app: Flask) -> None:
    app.before_request(identify)


def register_enforce(app: Flask) -> None:
    app.before_request(enforce)
