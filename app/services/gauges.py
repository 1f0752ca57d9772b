"""Gauges read at scrape time (no process keeps them): the broker's queue
depths and the index sizes, per collection or in total."""

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
    """A prometheus-client collector: register it on the scrape's registry.

    Collection names and tenant ids are the tenants' own: `per_collection`
    only when the scrape is behind METRICS_TOKEN; a public scrape gets the
    total alone."""

    def __init__(self, per_collection: bool) -> None:
        self.per_collection = per_collection

    def collect(self) -> Iterator[GaugeMetricFamily]:
        depth = GaugeMetricFamily("quarry_queue_depth", "Messages waiting in each job queue", labels=["queue"])
        try:
            for queue, size in queue_sizes().items():
                depth.add_metric([queue], size)
        except Exception as exc:  # the broker is down: /health says so; the gauge is left out
            log.warning("queue depth unavailable for /metrics: %s", exc)
        yield depth
        yield self._index_vectors()

    def _index_vectors(self) -> GaugeMetricFamily:
        labels = ["tenant", "collection"] if self.per_collection else []
        what = "per collection" if self.per_collection else "in all collections"
        vectors = GaugeMetricFamily("quarry_index_vectors", f"Chunks (vectors) {what}", labels=labels)
        try:
            with db.reads_only(), db.session_scope() as session:
                rows = session.execute(
                    select(Collection.tenant_id, Collection.name, func.count(Chunk.id))
                    .outerjoin(Chunk, Chunk.collection_id == Collection.id)
                    .group_by(Collection.id, Collection.tenant_id, Collection.name)
                ).all()
        except SQLAlchemyError as exc:  # the database is down: the gauge is left out
            log.warning("index sizes unavailable for /metrics: %s", exc)
            return vectors
        if not self.per_collection:
            vectors.add_metric([], sum(count for _tenant, _name, count in rows))
            return vectors
        for tenant, name, count in rows:
            vectors.add_metric([tenant, name], count)
        return vectors
