from __future__ import annotations

import time

import marshmallow as ma
from flask import current_app

from app.api.web_extensions import Blueprint, limiter, limiter_errors
from app.services import health

blp = Blueprint("health", __name__, url_prefix="/health", description="Liveness, readiness, health")
_started = time.monotonic()


class ProbeSchema(ma.Schema):
    status = ma.fields.String()
    checks = ma.fields.Dict()


class HealthSchema(ma.Schema):
    status = ma.fields.String(metadata={"enum": ["healthy", "degraded", "unhealthy"]})
    version = ma.fields.String()
    uptime_s = ma.fields.Float()
    components = ma.fields.Dict()


@blp.route("/live")
@blp.doc(operationId="health_live")
@blp.response(200, ProbeSchema)
def live():
    """200 while the process serves requests.

    A liveness probe: it checks nothing else, so a database outage does not
    get the process restarted.
    """
    return {"status": "ok", "checks": {}}


@blp.route("/ready")
@blp.doc(operationId="health_ready")
@blp.response(200, ProbeSchema)
@blp.alt_response(503, schema=ProbeSchema, description="The database or the broker does not answer")
def ready():
    """200 when the database and the job broker answer, else 503.

    A readiness probe: `checks` says which answered.
    """
    checks = {"database": health.database_ok(), "broker": health.broker_ok()}
    ok = all(checks.values())
    body = {"status": "ok" if ok else "unavailable", "checks": checks}
    return (body, 200) if ok else (body, 503, {"Retry-After": "5"})


@blp.route("")
@blp.doc(operationId="health")
@blp.response(200, HealthSchema)
@blp.alt_response(503, schema=HealthSchema, description="The database or Redis is down")
def overall():
    """Overall health with the state of each component.

    `degraded` while it answers with a part down (no live worker, or the rate
    limiter's storage); `unhealthy` (503) when the database or Redis is down.
    """
    body = health.report(current_app.config["QUARRY_VERSION"], time.monotonic() - _started, _rate_limiter_state())
    if body["status"] == "unhealthy":
        return body, 503, {"Retry-After": "5"}
    return body


def _rate_limiter_state() -> dict:
    try:
        up = bool(limiter.storage.check())
    except Exception:
        up = False
    # While its storage is down the API answers unlimited rather than failing.
    return {"status": "up" if up else "down", "storage_errors": limiter_errors.count}
