"""`/metrics` in Prometheus text, and the per-request HTTP counters."""

from __future__ import annotations

import hmac
import time

from flask import Flask, Response, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    generate_latest,
    multiprocess,
)

from app import metrics
from app.api.extensions import Blueprint
from app.config import settings
from app.services.errors import Unauthorized
from app.services.gauges import ScrapeTimeGauges

blp = Blueprint("metrics", __name__, description="Prometheus metrics")


@blp.route("/metrics")
@blp.doc(
    security=[],
    responses={"200": {"description": "Prometheus text exposition format", "content": {"text/plain": {"schema": {"type": "string"}}}}},
)
def scrape():
    """Every process's counters and histograms, added up; queue depths and
    index sizes read now. Public unless METRICS_TOKEN is set (then a Bearer token)."""
    if settings.metrics_token:
        sent = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(sent.encode(), settings.metrics_token.encode()):
            raise Unauthorized("/metrics needs `Authorization: Bearer <METRICS_TOKEN>`.")
    registry = CollectorRegistry()
    multiprocess.MultiProcessCollector(registry)
    registry.register(ScrapeTimeGauges())
    return Response(generate_latest(registry), mimetype=CONTENT_TYPE_LATEST)


def count_requests(app: Flask) -> None:
    """One sample per request, labelled by route template (never the raw
    path, whose ids would make a series per job)."""

    @app.before_request
    def _start_clock():
        g.metrics_started = time.perf_counter()

    @app.after_request
    def _count(response):
        started = g.pop("metrics_started", None)
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        if started is not None and route != "/metrics":
            metrics.HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
            metrics.HTTP_LATENCY.labels(route, request.method).observe(time.perf_counter() - started)
        if response.status_code == 429:
            body = response.get_json(silent=True) or {}
            metrics.REQUESTS_REFUSED.labels(body.get("code", "rate_limited")).inc()
        return response
