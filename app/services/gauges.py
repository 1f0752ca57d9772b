"""Gauges read at scrape time (no process keeps them): the broker's queue
depths and each collection's index size."""

from __future__ import annotations

import logging
from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily
from sqlalchemy import func, select
from sqlalchemy.exc import SQLAlchemyError

from app.extensions import db
from app.models import Chunk, Collection
from app.services.jobs.broker import queue_sizes

log = logging.getLogger(__name__)


class ScrapeTimeGauges:
    """A prometheus-client collector: register it on the scrape's registry."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("quarry_queue_depth", "Messages waiting in each job queue", labels=["queue"])
        try:
            for queue, size in queue_sizes().items():
                depth.add_metric([queue], size)
        except Exception as exc:  # the broker is down: /health says so; the gauge is left out
            log.warning("queue depth unavailable for /metrics: %s", exc)
        yield depth
        vectors = GaugeMetricFamily(
            "quarry_index_vectors", "Chunks (vectors) per collection", labels=["tenant", "collection"]
        )
        try:
            with db.reads_only(), db.session_scope() as session:
                rows = session.execute(
                    select(Collection.tenant_id, Collection.name, func.count(Chunk.id))
                    .outerjoin(Chunk, Chunk.collection_id == Collection.id)
                    .group_by(Collection.id, Collection.tenant_id, Collection.name)
                ).all()
        except SQLAlchemyError as exc:  # the database is down: the gauge is left out
            log.warning("index sizes unavailable for /metrics: %s", exc)
            rows = []
        for tenant, name, count in rows:
            vectors.add_metric([tenant, name], count)
        yield vectors
