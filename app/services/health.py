"""Readiness and health of the parts the service depends on."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy import text

from app.extensions import celery, db, redis_store, settings
from app.search.pipelines import PIPELINES
from app.services.webhooks.delivery import delivery_stats

log = logging.getLogger(__name__)


def database_ok() -> bool:
    try:
        with db.session_scope() as session:
            session.execute(text("SELECT 1"))
        return True
    except Exception as exc:
        log.warning("database check failed: %s", exc)
        return False


def redis_ok() -> bool:
    try:
        return bool(redis_store.client.ping())
    except Exception as exc:
        log.warning("redis check failed: %s", exc)
        return False


def broker_ok() -> bool:
    try:
        with celery.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1, timeout=2)
        return True
    except Exception as exc:
        log.warning("broker check failed: %s", exc)
        return False


def live_workers(timeout: float = 0.5) -> list[str]:
    try:
        replies = celery.control.ping(timeout=timeout) or []
    except Exception as exc:
        log.warning("worker ping failed: %s", exc)
        return []
    return sorted(name for reply in replies for name in reply)


def webhook_state() -> dict[str, Any]:
    with db.session_scope() as session:
        return delivery_stats(session)


def report(version: str, uptime_s: float, limiter_state: dict[str, Any]) -> dict[str, Any]:
    """`limiter_state` comes from the web layer, which owns the rate limiter."""
    database = database_ok()
    redis_up = redis_ok()
    workers = live_workers() if redis_up else []
    if not (database and redis_up):
        status = "unhealthy"
    elif not workers or limiter_state["status"] == "down":
        status = "degraded"
    else:
        status = "healthy"
    # A pipeline runs on the workers: none up, none can answer.
    pipelines = {
        name: "unavailable" if not workers or pipeline.unavailable_reason(settings) else "healthy"
        for name, pipeline in PIPELINES.items()
    }
    return {
        "status": status,
        "version": version,
        "uptime_s": round(uptime_s, 1),
        "components": {
            "database": {"status": "up" if database else "down"},
            "redis": {"status": "up" if redis_up else "down"},
            "workers": {"status": "up" if workers else "down", "count": len(workers), "names": workers},
            "pipelines": pipelines,
            "rate_limiter": limiter_state,
            "webhooks": webhook_state() if database else {"status": "unknown"},
        },
    }
