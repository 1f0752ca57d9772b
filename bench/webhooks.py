"""The `webhooks` suite: the delay from a job finishing to its webhook's
first attempt, and deliveries/s, to a receiver in this process that answers
200 at once (devstack's, as the tests use)."""

from __future__ import annotations

import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from bench import service
from bench.common import WORKER_CONCURRENCY, Log, settings
from bench.measure import epoch_seconds, latency_stats
from devstack.processes import Stack
from devstack.receiver import Receiver

DOCUMENTS = [{"text": f"The {animal} was seen near the {place}."}
             for animal in ("owl", "fox", "heron", "badger", "otter") for place in ("river", "barn", "wood", "road")]  # fmt: skip
# The first delivery in each worker child pays one-off costs (connections, imports).
WARMUP_SEARCHES = 4
PING_CLIENTS = 4
# Pings still missing this long after the posts count as lost.
LOST_AFTER_S = 120.0


def run(options: dict, log: Log) -> dict:
    receiver = Receiver().start()
    # The receiver listens on 127.0.0.1, which delivery refuses unless allowed.
    with (
        tempfile.TemporaryDirectory(prefix="quarry-bench-webhooks-") as workdir,
        service.private_service(Path(workdir), WEBHOOK_ALLOW_PRIVATE_NETWORKS="1") as (stack, api_key),
    ):
        stack.start_web()
        stack.start_worker(concurrency=WORKER_CONCURRENCY)
        stack.start_beat()
        assert stack.ingest("hooks", DOCUMENTS)["status"] == "succeeded"
        delay = measure_delay(stack, receiver, options["searches"])
        log(f"delay p50 {delay['delay_ms'].get('p50', 0):.1f} ms")
        throughput = measure_throughput(stack, api_key, receiver, options["pings"])
    receiver.stop()
    return {"delay": delay, "throughput": throughput, "first_attempt_s": settings.webhook_retry_schedule[0]}


def measure_delay(stack: Stack, receiver: Receiver, searches: int) -> dict:
    """One search at a time with a callback_url, the next once the last one's
    webhook arrived, so no delivery waits behind another. The receiver stamps
    arrival with time.time(), the clock the worker stamps finished_at with."""
    delays_ms, failed = [], 0
    for i in range(WARMUP_SEARCHES + searches):
        body = {"query": f"where was the animal {i}", "top_k": 3, "callback_url": receiver.url("/jobs")}
        stack.submit("/api/v1/collections/hooks/search", body)
        arrived = receiver.wait_for(i + 1)[i]  # the receiver answers 200: one request per job
        job = arrived.event["data"]["job"]
        failed += job["status"] != "succeeded"
        if i >= WARMUP_SEARCHES:
            delays_ms.append((arrived.at - epoch_seconds(job["finished_at"])) * 1000)
    return {"searches": searches, "failed_jobs": failed, "delay_ms": latency_stats(delays_ms)}


def measure_throughput(stack: Stack, api_key: str, receiver: Receiver, pings: int) -> dict:
    """`pings` POST /api/v1/webhooks/{id}/test from PING_CLIENTS threads as fast as they go."""
    before = len(receiver.received)
    created = stack.post("/api/v1/webhooks", json={"url": receiver.url("/pings"), "events": ["ping"]})
    assert created.status_code == 201, created.text
    path = f"/api/v1/webhooks/{created.json()['id']}/test"

    def send(count: int) -> list[int]:
        client = stack.client(api_key)  # a Session each: requests sessions are not thread-safe
        return [client.post(path).status_code for _ in range(count)]

    first_post = time.time()
    with ThreadPoolExecutor(PING_CLIENTS) as pool:
        shares = [pings // PING_CLIENTS + (i < pings % PING_CLIENTS) for i in range(PING_CLIENTS)]
        accepted = sum(status == 202 for part in pool.map(send, shares) for status in part)
    posts_done = time.time()
    try:
        receiver.wait_for(before + accepted, timeout=LOST_AFTER_S)
    except TimeoutError:
        pass  # the pings still missing count as lost
    arrived = receiver.received[before:]
    times = sorted(r.at for r in arrived)
    return {
        "sent": pings, "accepted": accepted, "arrived": len(arrived), "clients": PING_CLIENTS,
        "unique": len({r.headers["webhook-id"] for r in arrived}),
        "posts_per_s": pings / (posts_done - first_post),
        "deliveries_per_s": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None,
        "first_post_to_last_arrival_s": (times[-1] if times else posts_done) - first_post,
    }  # fmt: skip
