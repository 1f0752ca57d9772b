"""The `webhooks` suite: the delay from a job finishing to its webhook's
first attempt, and deliveries/s, against a receiver in this process (an
HTTP server answering 200 at once; arrival = time.time() once the body is
read, the clock the worker stamps finished_at with)."""

from __future__ import annotations

import json
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from app.config import settings
from bench.common import WORKER_CONCURRENCY, Log
from bench.measure import epoch_seconds, latency_stats
from bench.service import private_service
from devstack.ports import free_port
from devstack.processes import Stack

DOCUMENTS = [{"text": f"The {animal} was seen near the {place}."}
             for animal in ("owl", "fox", "heron", "badger", "otter") for place in ("river", "barn", "wood", "road")]  # fmt: skip
# The first delivery in each worker child pays one-off costs (connections, imports).
WARMUP_SEARCHES = 4
PING_CLIENTS = 4
# Pings still missing this long after the last arrival count as lost.
STALL_S = 30.0


class Receiver(ThreadingHTTPServer):
    """Each webhook's arrival: job events by job id (the first attempt only), pings with their webhook-id."""

    daemon_threads = True

    def __init__(self) -> None:
        self.port = free_port()
        self.jobs: dict[str, tuple[float, dict]] = {}
        self.pings: list[tuple[float, str]] = []
        self.arrived = threading.Condition()
        super().__init__(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self.serve_forever, daemon=True).start()

    def record(self, event: dict, webhook_id: str, at: float) -> None:
        with self.arrived:
            if event["type"] == "ping":
                self.pings.append((at, webhook_id))
            else:
                self.jobs.setdefault(event["data"]["job"]["id"], (at, event["data"]["job"]))
            self.arrived.notify_all()

    def wait_for_job(self, job_id: str, timeout: float = 60) -> tuple[float, dict]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: job_id in self.jobs, timeout):
                raise TimeoutError(f"no webhook for job {job_id} within {timeout:.0f} s")
            return self.jobs[job_id]


class Handler(BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.record(json.loads(body), self.headers.get("webhook-id", ""), time.time())
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


def run(options: dict, log: Log) -> dict:
    searches, pings = options["searches"], options["pings"]
    receiver = Receiver()
    # The receiver listens on 127.0.0.1, which delivery refuses unless allowed.
    with (
        tempfile.TemporaryDirectory(prefix="quarry-bench-webhooks-") as workdir,
        private_service(Path(workdir), WEBHOOK_ALLOW_PRIVATE_NETWORKS="1") as (stack, api_key),
    ):
        stack.start_web()
        stack.start_worker(concurrency=WORKER_CONCURRENCY)
        stack.start_beat()
        assert stack.ingest("hooks", DOCUMENTS)["status"] == "succeeded"
        delay = measure_delay(stack, receiver, searches)
        log(f"delay p50 {delay['delay_ms'].get('p50', 0):.1f} ms")
        throughput = measure_throughput(stack, api_key, receiver, pings)
    receiver.shutdown()
    receiver.server_close()
    return {"delay": delay, "throughput": throughput, "first_attempt_s": settings.webhook_retry_schedule[0]}


def measure_delay(stack: Stack, receiver: Receiver, searches: int) -> dict:
    """One search at a time with a callback_url, the next once the last one's
    webhook arrived, so no delivery waits behind another."""
    delays_ms, failed = [], 0
    for i in range(WARMUP_SEARCHES + searches):
        body = {
            "query": f"where was the animal {i}",
            "top_k": 3,
            "callback_url": f"http://127.0.0.1:{receiver.port}/jobs",
        }
        arrived_at, job = receiver.wait_for_job(stack.submit("/api/v1/collections/hooks/search", body)["id"])
        failed += job["status"] != "succeeded"
        if i >= WARMUP_SEARCHES:
            delays_ms.append((arrived_at - epoch_seconds(job["finished_at"])) * 1000)
    return {"searches": searches, "failed_jobs": failed, "delay_ms": latency_stats(delays_ms)}


def measure_throughput(stack: Stack, api_key: str, receiver: Receiver, pings: int) -> dict:
    """`pings` POST /api/v1/webhooks/{id}/test from PING_CLIENTS threads as fast as they go."""
    created = stack.post(
        "/api/v1/webhooks", json={"url": f"http://127.0.0.1:{receiver.port}/pings", "events": ["ping"]}
    )
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
    with receiver.arrived:
        while len(receiver.pings) < accepted and receiver.arrived.wait(STALL_S):
            pass
        times = sorted(at for at, _ in receiver.pings)
        unique = len({webhook_id for _, webhook_id in receiver.pings})
    return {
        "sent": pings, "accepted": accepted, "arrived": len(times), "unique": unique, "clients": PING_CLIENTS,
        "posts_per_s": pings / (posts_done - first_post),
        "deliveries_per_s": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else None,
        "first_post_to_last_arrival_s": (times[-1] if times else posts_done) - first_post,
    }  # fmt: skip
