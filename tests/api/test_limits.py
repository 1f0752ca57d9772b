"""Rate limits and backpressure, each on an app of its own with small limits
(the limiter's Redis going down: tests/integration/test_limits.py)."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

from redis import Redis

from devstack.waiting import wait_until
from tests.integration.corpora import unique


def assert_limit_headers(response, limit: int, remaining: int) -> None:
    assert response.headers["X-RateLimit-Limit"] == str(limit)
    assert response.headers["X-RateLimit-Remaining"] == str(remaining)
    assert int(response.headers["X-RateLimit-Reset"]) > time.time() - 5


def rate_limits(settings, **tiers) -> dict[str, str]:
    return {**settings.rate_limits, **tiers}


def test_the_request_past_the_limit_is_429_and_other_keys_are_unaffected(app_with, settings):
    stack = app_with(rate_limits=rate_limits(settings, free="5/minute"))
    tenant = unique("t1")
    first = stack.client(stack.create_key(tenant, tier="free"))
    second = stack.client(stack.create_key(tenant, tier="free"))

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
    # The tier decides the limit: the app's enterprise key has a larger one.
    assert stack.get("/api/v1/collections").headers["X-RateLimit-Limit"] == "6000"


def test_a_refused_key_is_refused_again_without_the_limiters_redis_until_its_window_frees(app_with, settings):
    """A client retrying in a tight loop past its limit costs no Redis round
    trip per retry, gets the same answer, and is let in again once the
    window has room."""
    stack = app_with(rate_limits=rate_limits(settings, free="2/second"))
    client = stack.client(stack.create_key(unique("loop"), tier="free"))
    assert [client.get("/api/v1/collections").status_code for _ in range(3)] == [200, 200, 429]

    redis = Redis.from_url(settings.ratelimit_storage_url)
    scripts_before = limiter_scripts_run(redis)
    retries = [client.get("/api/v1/collections") for _ in range(30)]
    scripts = limiter_scripts_run(redis) - scripts_before
    assert {response.status_code for response in retries} == {429}
    for response in retries:
        assert response.json()["code"] == "rate_limited"
        assert_limit_headers(response, 2, 0)
        assert 1 <= int(response.headers["Retry-After"]) <= 2
    # The limiter runs three scripts per request (check, deduction, window).
    assert scripts == 0, scripts

    assert wait_until(lambda: client.get("/api/v1/collections").status_code == 200, 5, what="the window to free")


def limiter_scripts_run(redis: Redis) -> int:
    """Lua scripts Redis has run (the limiter's every check; nothing else here runs one)."""
    return sum(redis.info("commandstats").get(f"cmdstat_{name}", {}).get("calls", 0) for name in ("evalsha", "eval"))


def test_a_counted_request_reads_and_counts_once_and_a_304_only_reads(app_with, settings):
    """The limiter's Redis round trips, headers included: a counted request
    reads the key's window and counts itself (two scripts), a 304 only reads
    it; the headers are as exact as a fresh read would give."""
    stack = app_with(rate_limits=rate_limits(settings, free="100/minute"))
    client = stack.client(stack.create_key(unique("trips"), tier="free"))
    redis = Redis.from_url(settings.ratelimit_storage_url)
    name = unique("trips")
    assert client.post("/api/v1/collections", json={"name": name}).status_code == 201  # the window exists now
    job = client.delete(f"/api/v1/collections/{name}").json()
    job = client.wait_job(job["id"])
    for _attempt in range(3):  # a window may end mid-sequence: its shift is read again; try again
        before = limiter_scripts_run(redis)
        counted = client.get(f"/api/v1/jobs/{job['id']}")
        after_counted = limiter_scripts_run(redis)
        unchanged = client.get(f"/api/v1/jobs/{job['id']}", headers={"If-None-Match": counted.headers["ETag"]})
        after_304 = limiter_scripts_run(redis)
        if (after_counted - before, after_304 - after_counted) == (2, 1):
            break
    assert (after_counted - before, after_304 - after_counted) == (2, 1)
    assert (counted.status_code, unchanged.status_code) == (200, 304)
    remaining = int(counted.headers["X-RateLimit-Remaining"])
    assert int(unchanged.headers["X-RateLimit-Remaining"]) == remaining
    assert_limit_headers(client.get("/api/v1/collections"), 100, remaining - 1)


def test_one_budget_per_key_across_every_route(app_with, settings):
    stack = app_with(rate_limits=rate_limits(settings, free="6/minute"))
    client = stack.client(stack.create_key(unique("t1"), tier="free"))
    assert client.post("/api/v1/collections", json={"name": "notes"}).status_code == 201
    paths = ["/api/v1/collections", "/api/v1/jobs", "/api/v1/collections/notes", "/api/v1/jobs", "/api/v1/keys"]
    remaining = [int(client.get(path).headers["X-RateLimit-Remaining"]) for path in paths]
    assert remaining == [4, 3, 2, 1, 0]
    for path in ("/api/v1/collections", "/api/v1/jobs", "/api/v1/collections/notes"):
        assert client.get(path).status_code == 429, path


def test_requests_without_a_valid_key_are_limited_per_ip(app_with, settings):
    stack = app_with(rate_limits=rate_limits(settings, anonymous="3/minute"))
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


def test_behind_a_trusted_proxy_the_forwarded_client_ip_is_counted(app_with, settings):
    stack = app_with(rate_limits=rate_limits(settings, anonymous="2/minute"), trusted_proxy_count=1)
    anonymous = stack.client()
    for client_ip in ("203.0.113.7", "203.0.113.8"):
        for _ in range(2):
            response = anonymous.get("/api/v1/jobs", headers={"X-Forwarded-For": client_ip})
            assert response.status_code == 401
    assert anonymous.get("/api/v1/jobs", headers={"X-Forwarded-For": "203.0.113.7"}).status_code == 429
    assert anonymous.get("/api/v1/jobs", headers={"X-Forwarded-For": "203.0.113.9"}).status_code == 401


def empty_queues(stack) -> None:
    """Nothing waits in the queues, and the depth this process sampled before
    (once a second at most) has gone stale."""
    stack.worker.run_pending()
    time.sleep(1.1)


def test_in_flight_quota_and_queue_depth_push_back(app_with):
    stack = app_with(inflight_jobs={"free": 2, "pro": 100, "enterprise": 1000}, queue_depth_limit=4)
    empty_queues(stack)
    tenant = unique("busy")
    owner = stack.client(stack.create_key(tenant))
    first = owner.client(owner.create_key(tenant, tier="free"))
    second = owner.client(owner.create_key(tenant, tier="free"))
    search = {"query": "anything"}
    # No worker: accepted jobs stay queued, as they would behind a backlog.
    with stack.worker.paused():
        assert owner.post("/api/v1/collections", json={"name": "busy"}).status_code == 201
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
        assert owner.post("/api/v1/collections/busy/search", json=search).status_code == 202
        time.sleep(1.2)  # the depth is sampled at most once a second
        overloaded = owner.post("/api/v1/collections/busy/search", json=search)
        assert overloaded.status_code == 503
        assert overloaded.json()["code"] == "service_unavailable"
        assert int(overloaded.headers["Retry-After"]) > 0

        # Refused submits left no job behind: four were accepted, all still queued.
        jobs = owner.get("/api/v1/jobs", params={"collection": "busy", "limit": 100}).json()["items"]
        assert [j["status"] for j in jobs] == ["queued"] * 4


def test_the_in_flight_quota_holds_under_concurrent_submits(app_with, settings):
    stack = app_with(
        inflight_jobs={"free": 10, "pro": 100, "enterprise": 1000},
        rate_limits=rate_limits(settings, free="1000/minute"),
    )
    client = stack.client(stack.create_key(unique("t1"), tier="free"))
    start = threading.Barrier(20)

    def submit(_):
        start.wait()
        return client.post("/api/v1/collections/race/search", json={"query": "q"}).status_code

    with stack.worker.paused():  # no worker: accepted jobs stay queued
        assert client.post("/api/v1/collections", json={"name": "race"}).status_code == 201
        with ThreadPoolExecutor(20) as pool:
            codes = list(pool.map(submit, range(20)))
        assert sorted(codes) == [202] * 10 + [429] * 10
        queued = client.get("/api/v1/jobs", params={"status": "queued", "limit": 100}).json()["items"]
        assert len(queued) == 10


def test_a_key_past_its_fair_share_in_flight_is_overtaken_by_other_keys(app_with):
    """A key submitting in a tight loop keeps its quota, but what it queues
    beyond its fair share runs after the searches other keys send later."""
    stack = app_with(fair_share_jobs=2)
    empty_queues(stack)
    tenant = unique("fair")
    owner = stack.client(stack.create_key(tenant))
    greedy = owner.client(owner.create_key(tenant, tier="pro"))
    polite = owner.client(owner.create_key(tenant, tier="pro"))
    assert owner.post("/api/v1/collections", json={"name": "fair"}).status_code == 201

    def search(client, query: str) -> str:
        response = client.post("/api/v1/collections/fair/search", json={"query": query})
        assert response.status_code == 202, response.text
        return response.json()["id"]

    with stack.worker.paused():  # no worker yet: everything waits in the queue
        greedy_ids = [search(greedy, f"greedy {n}") for n in range(5)]
        polite_id = search(polite, "polite")
    stack.worker.run_pending()
    started = {job_id: owner.get(f"/api/v1/jobs/{job_id}").json()["started_at"] for job_id in [*greedy_ids, polite_id]}
    order = sorted(started, key=started.get)
    # The greedy key's first two went out as anyone's; its other three after the polite one.
    assert order == [*greedy_ids[:2], polite_id, *greedy_ids[2:]]
