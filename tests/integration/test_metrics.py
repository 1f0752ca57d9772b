"""/metrics adds up every process: the web's HTTP counters and the worker's
job counters, with scrape-time gauges. (Its token: tests/api/test_metrics.py.)"""

from __future__ import annotations

import uuid

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.integration.corpora import TOPICS, unique

pytestmark = pytest.mark.integration


def samples(service) -> dict[tuple[str, frozenset], float]:
    response = service.http.get(service.url("/metrics"), timeout=30, headers={"Authorization": ""})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(found, name, **labels) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def test_metrics_count_jobs_from_the_worker_and_requests_by_route(service):
    name = unique("metrics")
    assert service.ingest(name, [{"id": d, "text": t} for d, t in TOPICS[:4]])["status"] == "succeeded"
    before = samples(service)
    job = service.search(name, query=f"honey {uuid.uuid4().hex[:6]}", pipeline="keyword")
    assert job["status"] == "succeeded"
    after = samples(service)

    assert (
        value(after, "quarry_jobs_submitted_total", type="search")
        == value(before, "quarry_jobs_submitted_total", type="search") + 1
    )
    # Started and finished are counted in the worker's pool process.
    assert (
        value(after, "quarry_jobs_started_total", type="search")
        >= value(before, "quarry_jobs_started_total", type="search") + 1
    )
    finished = ("quarry_jobs_finished_total", {"type": "search", "outcome": "succeeded"})
    assert value(after, finished[0], **finished[1]) >= value(before, finished[0], **finished[1]) + 1
    assert value(after, "quarry_job_run_seconds_count", type="search") >= 1
    route = {"route": "/api/v1/collections/<name>/search", "method": "POST", "status": "202"}
    assert (
        value(after, "quarry_http_requests_total", **route) == value(before, "quarry_http_requests_total", **route) + 1
    )
    # Without METRICS_TOKEN, the index size is the total alone (per collection: test_hostile_edges.py).
    assert value(after, "quarry_index_vectors") >= 4
    assert ("quarry_queue_depth", frozenset({("queue", "search")})) in after
