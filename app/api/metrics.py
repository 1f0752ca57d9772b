"""`/metrics` in Prometheus text, and the per-request HTTP counters."""

from __future__ import annotations

import hmac
import logging
import re
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from app import metrics
from app.api.web_extensions import Blueprint
from app.extensions import settings
from app.services.errors import Unauthorized
from app.services.gauges import ScrapeTimeGauges

blp = Blueprint("metrics", __name__, description="Prometheus metrics")
access_log = logging.getLogger("quarry.access")
_KEY_PREFIX = re.compile(r"(qk_[0-9a-f]{12})_")


def _key_prefix() -> str | None:
    """The key's visible prefix, never the key."""
    sent = request.headers.get("X-API-Key") or request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
    match = _KEY_PREFIX.match(sent)
    return match.group(1) if match else None


@blp.route("/metrics")
@blp.doc(
    operationId="metrics",
    security=[],
    responses={
        "200": {
            "description": "Prometheus text exposition format",
            "content": {"text/plain": {"schema": {"type": "string"}}},
        }
    },
)
def scrape():
    """Prometheus metrics of every process of the service.

    Every process's counters and histograms, added up; queue depths and index
    sizes read now. Public unless METRICS_TOKEN is set (then a Bearer token);
    index sizes per tenant and collection only behind the token, since the
    names are the tenants' own.
    """
    if settings.metrics_token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), settings.metrics_token.encode()):
            raise Unauthorized("/metrics needs `Authorization: Bearer <METRICS_TOKEN>`.")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(ScrapeTimeGauges(per_collection=bool(settings.metrics_token)))
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def observe_requests(app: Flask) -> None:
    """One sample and one access-log line per request, by route template
    (never the raw path, whose ids would make a series per job)."""

    @app.before_request
    def _start_clock():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response):
        started = g.pop("metrics_started", None)
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        if started is not None and route != "/metrics":
            took = time.perf_counter() - started
            metrics.HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
            metrics.HTTP_LATENCY.labels(route, request.method).observe(took)
            access_log.info(
                "%s %s %s %.1f ms",
                request.method,
                route,
                response.status_code,
                took * 1000,
                extra={
                    "method": request.method,
                    "route": route,
                    "status": response.status_code,
                    "duration_ms": round(took * 1000, 1),
                    "key_prefix": _key_prefix(),
                },
            )
        if response.status_code == 429:
            body = response.get_json(silent=True) or {}
            metrics.REQUESTS_REFUSED.labels(body.get("code", "rate_limited")).inc()
        return response
