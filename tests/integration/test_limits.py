"""The API keeps answering when the rate limiter's Redis goes down (the
limits themselves: tests/api/test_limits.py)."""

from __future__ import annotations

import pytest

from devstack.processes import RedisServer

pytestmark = pytest.mark.integration


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
