"""Rate limits and backpressure, each on a private stack with small limits."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest

from devstack.processes import RedisServer

pytestmark = pytest.mark.integration


def assert_limit_headers(response, limit: int, remaining: int) -> None:
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    assert int(response.headers["X-RateLimit-Reset"]) > time.time() - 5


def test_the_request_past_the_limit_is_429_and_other_keys_are_unaffected(new_stack):
    stack = new_stack(RATE_LIMIT_FREE="5/minute")
    stack.start_web()
    first = stack.client(stack.create_key("t1", tier="free"))
    second = stack.client(stack.create_key("t1", tier="free"))

    for n in range(5):
        response = first.get("/api/v1/collections")
        assert response.status_code == 200
        assert_limit_headers(response, 5, 4 - n)
        assert "Retry-After" not in response.headers

    refused = first.get("/api/v1/collections")
    assert refused.status_code == 429
    assert refused.headers["Content-Type"] == "application/problem+json"
    assert refused.json()["code"] == "rate_limited"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert_limit_headers(refused, 5, 0)

    other = second.get("/api/v1/collections")
    assert other.status_code == 200
    assert_limit_headers(other, 5, 4)
    # The tier decides the limit: the stack's enterprise key has a larger one.
    assert stack.get("/api/v1/collections").headers["X-RateLimit-Limit"] == "6000"


def test_one_budget_per_key_across_every_route(new_stack):
    stack = new_stack(RATE_LIMIT_FREE="6/minute")
    stack.start_web()
    client = stack.client(stack.create_key("t1", tier="free"))
    assert client.post("/api/v1/collections", json={"name": "notes"}).status_code == 201
    paths = ["/api/v1/collections", "/api/v1/jobs", "/api/v1/collections/notes", "/api/v1/jobs", "/api/v1/keys"]
    remaining = [int(client.get(path).headers["X-RateLimit-Remaining"]) for path in paths]
    assert remaining == [4, 3, 2, 1, 0]
    for path in ("/api/v1/collections", "/api/v1/jobs", "/api/v1/collections/notes"):
        assert client.get(path).status_code == 429, path


def test_requests_without_a_valid_key_are_limited_per_ip(new_stack):
    stack = new_stack(RATE_LIMIT_ANONYMOUS="3/minute")
    stack.start_web()
    anonymous = stack.client()
    for n in range(3):
        response = anonymous.get("/api/v1/jobs", headers={"X-Forwarded-For": f"10.0.0.{n}"})
        assert response.status_code == 401
        assert_limit_headers(response, 3, 2 - n)
    # X-Forwarded-For is not believed without a trusted proxy in front.
    refused = anonymous.get("/api/v1/jobs", headers={"X-Forwarded-For": "10.9.9.9"})
    assert refused.status_code == 429 and refused.json()["code"] == "rate_limited"
    # A valid key is counted on its own, not per IP.
    assert stack.get("/api/v1/jobs").status_code == 200


def test_behind_a_trusted_proxy_the_forwarded_client_ip_is_counted(new_stack):
    stack = new_stack(RATE_LIMIT_ANONYMOUS="2/minute", TRUSTED_PROXY_COUNT="1")
    stack.start_web()
    anonymous = stack.client()
    for client_ip in ("203.0.113.7", "203.0.113.8"):
        for _ in range(2):
            response = anonymous.get("/api/v1/jobs", headers={"X-Forwarded-For": client_ip})
            assert response.status_code == 401
    assert anonymous.get("/api/v1/jobs", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 429
    assert anonymous.get("/api/v1/jobs", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 401


def test_the_api_keeps_answering_when_the_limiters_redis_is_down(new_stack, tmp_path):
    limiter_redis = RedisServer(tmp_path / "limiter-redis").start()
    try:
        stack = new_stack(RATELIMIT_STORAGE_URL=limiter_redis.url, RATE_LIMIT_ENTERPRISE="1000/minute")
        stack.start_web()
        assert stack.get("/api/v1/collections").headers["X-RateLimit-Limit"] == "1000"

        limiter_redis.stop()
        for _ in range(3):
            response = stack.get("/api/v1/collections")
            assert response.status_code == 200, response.text
        created = stack.post("/api/v1/collections", json={"name": "still-up"})
        assert created.status_code == 201
        limiter_health = stack.get("/health").json()["components"]["rate_limiter"]
        assert limiter_health["status"] == "down" and limiter_health["storage_errors"] >= 4

        limiter_redis.start()
        assert stack.get("/api/v1/collections").headers.get("X-RateLimit-Limit") == "1000"
    finally:
        limiter_redis.stop()


def test_in_flight_quota_and_queue_depth_push_back(new_stack):
    # No worker: accepted jobs stay queued, as they would behind a backlog.
    stack = new_stack(INFLIGHT_JOBS_FREE="2", QUEUE_DEPTH_LIMIT="4")
    stack.start_web()
    assert stack.post("/api/v1/collections", json={"name": "busy"}).status_code == 201
    first = stack.client(stack.create_key("private", tier="free"))
    second = stack.client(stack.create_key("private", tier="free"))
    search = {"query": "anything"}

    for _ in range(2):
        assert first.post("/api/v1/collections/busy/search", json=search).status_code == 202
    refused = first.post("/api/v1/collections/busy/search", json=search)
    assert refused.status_code == 429
    assert refused.json()["code"] == "quota_exceeded"
    assert int(refused.headers["Retry-After"]) > 0
    uploads = first.post("/api/v1/collections/busy/documents", json={"documents": [{"text": "x"}]})
    assert uploads.status_code == 429 and uploads.json()["code"] == "quota_exceeded"

    # Another key has its own quota.
    assert second.post("/api/v1/collections/busy/search", json=search).status_code == 202
    # Three messages wait; the fourth fills the queue to QUEUE_DEPTH_LIMIT.
    assert stack.post("/api/v1/collections/busy/search", json=search).status_code == 202
    time.sleep(1.2)  # the depth is sampled at most once a second
    overloaded = stack.post("/api/v1/collections/busy/search", json=search)
    assert overloaded.status_code == 503
    assert overloaded.json()["code"] == "service_unavailable"
    assert int(overloaded.headers["Retry-After"]) > 0

    # Refused submits left no job behind: four were accepted, all still queued.
    jobs = stack.get("/api/v1/jobs", params={"collection": "busy", "limit": 100}).json()["items"]
    assert [j["status"] for j in jobs] == ["queued"] * 4


def test_the_in_flight_quota_holds_under_concurrent_submits(new_stack):
    stack = new_stack(INFLIGHT_JOBS_FREE="10", RATE_LIMIT_FREE="1000/minute")
    stack.start_web(processes=2, threads=10)  # no worker: accepted jobs stay queued
    client = stack.client(stack.create_key("t1", tier="free"))
    assert client.post("/api/v1/collections", json={"name": "race"}).status_code == 201
    start = threading.Barrier(20)

    def submit(_):
        start.wait()
        return client.post("/api/v1/collections/race/search", json={"query": "q"}).status_code

    with ThreadPoolExecutor(20) as pool:
        codes = list(pool.map(submit, range(20)))
    assert sorted(codes) == [202] * 10 + [429] * 10
    queued = client.get("/api/v1/jobs", params={"status": "queued", "limit": 100}).json()["items"]
    assert len(queued) == 10
