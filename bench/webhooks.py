#!/usr/bin/env python
"""Webhook delivery benchmark: the delay from a job finishing to its webhook's
first attempt, and deliveries/s to a local receiver, for the "## Webhook
delivery" section of docs/benchmarks.md. The service is started with devstack
as bench/run.py starts it, plus beat; the receiver is an HTTP server in this
process. See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

# As in bench/run.py: run as a script, Python puts bench/ first on sys.path;
# the project root goes there instead, so `bench`, `devstack` and `app` import.
ROOT = Path(__file__).resolve().parent.parent
if not __package__:
    sys.path[0] = str(ROOT)

from app.config import settings  # noqa: E402  (the environment the service processes inherit)
from bench.parameters import (  # noqa: E402
    BENCH_LIMITS,
    BENCH_TIER,
    DEFAULT_OUTPUT,
    WEBHOOK_SECTION,
    WORKER_CONCURRENCY,
)
from bench.report import write_section  # noqa: E402
from bench.system import code_state, code_words, load_average, usable_cores  # noqa: E402
from bench.timing import epoch_seconds, latency_stats  # noqa: E402
from devstack.processes import RedisServer, Stack, create_database, free_port  # noqa: E402

SECTION = WEBHOOK_SECTION
COLLECTION = "hooks"
ANIMALS, PLACES = ("owl", "fox", "heron", "badger", "otter"), ("river", "barn", "wood", "road")
DOCUMENTS = [{"text": f"The {animal} was seen near the {place}."} for animal in ANIMALS for place in PLACES]
# Untimed first searches: the first delivery in each worker child pays one-off
# costs (database connection, imports) that a running service has paid long ago.
WARMUP_SEARCHES = 4
WEBHOOK_TIMEOUT = 60.0
PING_CLIENTS = 4
# Pings still missing this long after the last arrival count as lost.
STALL_SECONDS = 30.0
# The receiver listens on 127.0.0.1, which delivery refuses unless allowed.
SERVICE_ENV = {**BENCH_LIMITS, "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1"}


class WebhookHandler(BaseHTTPRequestHandler):
    """Hands each request to the server's Receiver and answers 200 at once, as a receiver should."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.server.receiver.record(json.loads(body), self.headers.get("webhook-id", ""), time.time())
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *_args) -> None:
        pass


class Receiver:
    """Each webhook's arrival (time.time() once its body is read; the worker
    stamps finished_at with the same clock): job events by job id, the first
    arrival only (the first attempt), and pings with their webhook-id."""

    def __init__(self) -> None:
        self.port = free_port()
        self.jobs: dict[str, tuple[float, dict]] = {}
        self.pings: list[tuple[float, str]] = []
        self.arrived = threading.Condition()
        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), WebhookHandler)
        self.server.daemon_threads = True
        self.server.receiver = self

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def start(self) -> Receiver:
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def record(self, event: dict, webhook_id: str, at: float) -> None:
        with self.arrived:
            if event["type"] == "ping":
                self.pings.append((at, webhook_id))
            else:
                self.jobs.setdefault(event["data"]["job"]["id"], (at, event))
            self.arrived.notify_all()

    def wait_for_job(self, job_id: str, timeout: float) -> tuple[float, dict]:
        with self.arrived:
            if not self.arrived.wait_for(lambda: job_id in self.jobs, timeout):
                raise TimeoutError(f"no webhook for job {job_id} within {timeout:.0f} s")
            return self.jobs[job_id]

    def wait_for_pings(self, count: int, stall: float) -> list[tuple[float, str]]:
        """Until `count` pings arrived, or none arrived for `stall` seconds."""
        with self.arrived:
            while len(self.pings) < count and self.arrived.wait(stall):
                pass
            return list(self.pings)


def run_service(workdir: Path, searches: int, pings: int) -> dict:
    """Start everything, ingest, run both phases, stop everything."""
    redis = RedisServer(workdir / "redis").start()
    database_url, drop_database = create_database(workdir / "db")
    (workdir / "stack").mkdir()
    stack = Stack(workdir / "stack", database_url, redis, **SERVICE_ENV)
    receiver = Receiver().start()
    try:
        api_key = stack.create_key("bench-webhooks", scopes="read,write", tier=BENCH_TIER, name="bench")
        stack.authenticate(api_key)
        stack.start_web()
        stack.start_worker(concurrency=WORKER_CONCURRENCY)
        stack.start_beat()
        ingest = stack.ingest(COLLECTION, DOCUMENTS)
        assert ingest["status"] == "succeeded", ingest
        return {
            "delay": measure_delay(stack, receiver, searches),
            "throughput": measure_throughput(stack, api_key, receiver, pings),
        }
    finally:
        receiver.stop()
        stack.stop()
        redis.stop()
        drop_database()


def measure_delay(stack: Stack, receiver: Receiver, searches: int) -> dict:
    """One search at a time, the next once the last one's webhook arrived, so
    no delivery waits behind another job or delivery."""
    delays_ms, failed = [], 0
    for i in range(WARMUP_SEARCHES + searches):
        body = {"query": f"where was the {ANIMALS[i % len(ANIMALS)]}", "top_k": 3,
                "callback_url": receiver.url("/jobs")}
        response = stack.post(f"/api/v1/collections/{COLLECTION}/search", json=body)
        assert response.status_code == 202, response.text
        arrived_at, event = receiver.wait_for_job(response.json()["id"], WEBHOOK_TIMEOUT)
        job = event["data"]["job"]  # the job as a poll returns it, finished_at included
        failed += job["status"] != "succeeded"
        if i >= WARMUP_SEARCHES:
            delays_ms.append((arrived_at - epoch_seconds(job["finished_at"])) * 1000)
    return {"searches": searches, "warmup": WARMUP_SEARCHES, "failed_jobs": failed,
            "delay_ms": latency_stats(delays_ms)}


def measure_throughput(stack: Stack, api_key: str, receiver: Receiver, pings: int) -> dict:
    created = stack.post("/api/v1/webhooks", json={"url": receiver.url("/pings"), "events": ["ping"]})
    assert created.status_code == 201, created.text
    test_path = f"/api/v1/webhooks/{created.json()['id']}/test"

    def send(count: int) -> list[int]:
        client = stack.client(api_key)  # a Session each: requests sessions are not thread-safe
        return [client.post(test_path).status_code for _ in range(count)]

    shares = [pings // PING_CLIENTS + (i < pings % PING_CLIENTS) for i in range(PING_CLIENTS)]
    first_post = time.time()
    with ThreadPoolExecutor(PING_CLIENTS) as pool:
        statuses = [status for part in pool.map(send, shares) for status in part]
    posts_done = time.time()
    accepted = statuses.count(202)
    arrivals = receiver.wait_for_pings(accepted, STALL_SECONDS)
    times = sorted(at for at, _ in arrivals)
    unique = len({webhook_id for _, webhook_id in arrivals})
    return {
        "sent": pings, "accepted": accepted, "arrived": len(arrivals), "unique": unique,
        "clients": PING_CLIENTS,
        "posts_per_s": pings / (posts_done - first_post),
        "deliveries_per_s": (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else float("nan"),
        "wall_s": (times[-1] if times else posts_done) - first_post,
        "lag_s": (times[-1] - posts_done) if times else float("nan"),
    }


def render(results: dict) -> str:
    delay, pings, run = results["delay"]["delay_ms"], results["throughput"], results["delay"]
    code = results["code"]
    settings_lines = [
        f"Date: {results['date']} (run took {results['took_s']:.0f} s); code: {code_words(code)}",
        f"Machine: {results['cpus']} CPUs; load average at start {' '.join(results['load_at_start'])}",
        f"Service: SQLite, private redis-server, gunicorn 1 process × 4 threads, ONE Celery worker with "
        f"concurrency {WORKER_CONCURRENCY}, beat; `WEBHOOK_ALLOW_PRIVATE_NETWORKS=1`; first attempt "
        f"{results['first_step_s']} s after the event (`WEBHOOK_RETRY_SCHEDULE`); key tier `{BENCH_TIER}`, "
        "limits raised",
        "Receiver: an HTTP server on 127.0.0.1 in the benchmark process, answering 200 at once; arrival = "
        "`time.time()` once the body is read (same clock as the worker's)",
        f"Delay: {run['searches']} `dense` searches (top_k 3, {len(DOCUMENTS)} short documents) one at a time, "
        f"each with a `callback_url`, the next after the last one's webhook arrived ({run['warmup']} untimed "
        "first); delay = arrival − the event's `finished_at`",
        f"Throughput: {pings['sent']} `POST /api/v1/webhooks/{{id}}/test` from {pings['clients']} client "
        "threads as fast as they go; deliveries/s from the first to the last arrival",
    ]
    rows = [
        ("Job finished → webhook first attempt, p50 / p95 / max (ms)",
         f"{delay['p50']:.1f} / {delay['p95']:.1f} / {delay['max']:.1f}"),
        ("Deliveries/s at the receiver (pings)", f"{pings['deliveries_per_s']:.1f}"),
        ("Pings sent / accepted / arrived / unique webhook-ids",
         f"{pings['sent']} / {pings['accepted']} / {pings['arrived']} / {pings['unique']}"),
        ("First POST → last arrival (s); POSTs accepted/s", f"{pings['wall_s']:.2f}; {pings['posts_per_s']:.1f}"),
        ("Searches timed (jobs not succeeded)", f"{delay['n']} ({run['failed_jobs']})"),
    ]
    return "\n".join([
        SECTION, "",
        "Produced by `make bench-webhooks` (`.venv/bin/python bench/webhooks.py`).", "",
        *(f"- {line}" for line in settings_lines), "",
        "| | Value |", "|---|---|", *(f"| {name} | {value} |" for name, value in rows), "",
        interpret(results), "", "",
    ])


def interpret(results: dict) -> str:
    """Sentences from the measured numbers, against the target p50 ≤ 50 ms."""
    delay, pings = results["delay"]["delay_ms"], results["throughput"]
    verdict = "within" if delay["p50"] <= 50 else f"{delay['p50'] - 50:.1f} ms over"
    pace = ("so delivery, not the API, set the pace" if pings["lag_s"] > 0.5
            else "so delivery kept up with the API, which set the pace")
    text = (
        f"The median webhook reached the receiver {delay['p50']:.1f} ms after its job's `finished_at`, "
        f"{verdict} the target (p50 ≤ 50 ms); p95 was {delay['p95']:.1f} ms, the slowest {delay['max']:.1f} ms. "
        "That time holds the job's commit, the task's trip through Redis to a free worker child, the "
        "delivery's claim (an UPDATE and commit), signing and a new HTTP connection. "
        f"One worker delivered {pings['deliveries_per_s']:.1f} pings/s; the API accepted the test requests at "
        f"{pings['posts_per_s']:.1f}/s and the last ping arrived {pings['lag_s']:.1f} s after the last was "
        f"accepted, {pace}. "
    )
    missing, repeated = pings["accepted"] - pings["unique"], pings["arrived"] - pings["unique"]
    if missing == 0 and repeated == 0 and pings["accepted"] == pings["sent"]:
        return text + "Every ping arrived, each webhook-id once."
    return text + (f"Of {pings['sent']} pings {pings['accepted']} were accepted, {missing} of those never "
                   f"arrived and {repeated} arrived more than once (at-least-once delivery).")


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--searches", type=int, default=100, help="timed searches with a callback_url")
    parser.add_argument("--pings", type=int, default=500, help="pings in the throughput phase")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file; its section is replaced")
    args = parser.parse_args()
    if args.searches < 1 or args.pings < 2:
        parser.error("--searches must be at least 1 and --pings at least 2")
    return args


def main() -> int:
    args = parse_args()
    # Keep a developer's local service (and a test database) out of the run.
    for name in ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL", "TEST_DATABASE_URL"):
        os.environ.pop(name, None)
    started, load_at_start = time.time(), load_average()
    workdir = Path(tempfile.mkdtemp(prefix="quarry-bench-webhooks-"))
    try:
        results = run_service(workdir, args.searches, args.pings)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results.update(
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), took_s=time.time() - started,
        cpus=usable_cores(), load_at_start=load_at_start, code=code_state(),
        first_step_s=settings.webhook_retry_schedule[0],
    )
    section = render(results)
    write_section(args.output, SECTION, section)  # the rest of the file is bench/run.py's
    print(section.replace(SECTION + "\n\n", "", 1), end="")
    print(f"wrote {args.output}")
    pings = results["throughput"]
    return 0 if pings["unique"] == pings["accepted"] == pings["sent"] else 1


if __name__ == "__main__":
    sys.exit(main())
