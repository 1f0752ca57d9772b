"""The `requests` suite: the CPU one request of each kind costs the web
(gunicorn's processes) and Redis, read from /proc, each kind measured alone
from one client over keep-alive: a search submit, a poll of a finished job
(200), a conditional poll of it (304), and a poll by a key past its rate
limit (429). The yardsticks of the web's share of a search's CPU, and of
what a naive client costs the others."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from bench import service
from bench.common import WORKER_CONCURRENCY, Log
from bench.measure import cpu_seconds, group_pids
from devstack.client import Client
from devstack.processes import Stack

DOCUMENTS = [{"text": f"The {animal} was seen near the {place}."}
             for animal in ("owl", "fox", "heron", "badger", "otter") for place in ("river", "barn", "wood", "road")]  # fmt: skip
# Requests of each kind before measuring: connections, caches, lazy imports.
WARMUP = 20
# A refused key's requests are each held by the web until its refusal is
# about to lapse (a second at most; app/api/held_requests.py): fewer are
# sent, and what the web and Redis spend idle over that time is taken off.
REFUSED_POLLS, IDLE_SECONDS = 20, 5.0


def run(options: dict, log: Log) -> dict:
    count = options["requests"]
    with (
        tempfile.TemporaryDirectory(prefix="quarry-bench-requests-") as workdir,
        # The refused key's window must not free a request while its 429s are measured.
        service.private_service(Path(workdir), RATE_LIMIT_FREE="5/hour") as (stack, _key),
    ):
        stack.start_web()
        worker = stack.start_worker(concurrency=WORKER_CONCURRENCY)
        assert stack.ingest("requests", DOCUMENTS)["status"] == "succeeded"
        # No worker while submits are measured: nothing else runs beside the web.
        stack.kill(worker)
        stack.processes.remove(worker)
        meter = WebMeter(stack)
        submitted = [submit(stack, i) for i in range(WARMUP)]
        figures = {"submit": meter.per_request(lambda: submitted.extend(submit(stack, i) for i in range(count)), count)}
        stack.start_worker(concurrency=WORKER_CONCURRENCY)
        finished = [stack.wait_job(job_id, timeout=300) for job_id in submitted]
        assert all(job["status"] == "succeeded" for job in finished), "a measured search failed"
        jobs = [job["id"] for job in finished[WARMUP : WARMUP + count]]
        etags = [poll(stack, job_id) for job_id in jobs]  # warm-up, and the ETags
        figures["poll_200"] = meter.per_request(lambda: [poll(stack, job_id) for job_id in jobs], count)
        figures["poll_304"] = meter.per_request(lambda: [poll(stack, j, etag) for j, etag in zip(jobs, etags)], count)
        refused, idle = exhausted_client(stack, jobs[0]), meter.idle_per_second(IDLE_SECONDS)
        figures["poll_429"] = meter.per_request(
            lambda: [poll_refused(refused, jobs[0]) for _ in range(REFUSED_POLLS)], REFUSED_POLLS, idle
        )
        service.check_alive(stack)
    for kind, cost in figures.items():
        log(f"{kind}: web {cost['web_cpu_ms']:.2f} ms, redis {cost['redis_cpu_ms']:.2f} ms CPU per request")
    return {"requests_per_kind": count, "refused_polls": REFUSED_POLLS, "cpu_per_request": figures}


class WebMeter:
    """CPU seconds of the web's process group and of Redis, between two reads."""

    def __init__(self, stack: Stack) -> None:
        self.web_group = stack.processes[0].pid  # the web is started first, in a group of its own
        self.redis_pid = stack.redis.process.pid

    def read(self) -> tuple[float, float]:
        return cpu_seconds(group_pids(self.web_group)), cpu_seconds([self.redis_pid])

    def idle_per_second(self, seconds: float) -> tuple[float, float]:
        """CPU seconds per second of the web and Redis with no request at all."""
        idle = self.per_request(lambda: time.sleep(seconds), 1)
        return idle["web_cpu_ms"] / idle["wall_ms"], idle["redis_cpu_ms"] / idle["wall_ms"]

    def per_request(self, send, count: int, idle: tuple[float, float] = (0.0, 0.0)) -> dict:
        """CPU per request of `count` requests sent by send(), less `idle`
        (CPU seconds per second) over the time they took."""
        (web, redis), started = self.read(), time.perf_counter()
        send()
        (web_after, redis_after), wall = self.read(), time.perf_counter() - started
        return {
            "web_cpu_ms": max(0.0, web_after - web - idle[0] * wall) / count * 1000,
            "redis_cpu_ms": max(0.0, redis_after - redis - idle[1] * wall) / count * 1000,
            "wall_ms": wall / count * 1000,
        }


def submit(stack: Stack, i: int) -> str:
    response = stack.post("/api/v1/collections/requests/search", json={"query": f"which animal by the river {i}"})
    assert response.status_code == 202, response.text
    return response.json()["id"]


def poll(stack: Stack, job_id: str, etag: str | None = None) -> str:
    response = stack.get(f"/api/v1/jobs/{job_id}", headers={"If-None-Match": etag} if etag else {})
    assert response.status_code == (304 if etag else 200), response.text
    return response.headers["ETag"]


def exhausted_client(stack: Stack, job_id: str) -> Client:
    """A client whose free-tier key has used up its window: its polls are refused."""
    client = stack.client(stack.create_key("bench-refused", scopes="read", tier="free", name="refused"))
    while client.get(f"/api/v1/jobs/{job_id}").status_code != 429:
        pass
    return client


def poll_refused(client: Client, job_id: str) -> None:
    response = client.get(f"/api/v1/jobs/{job_id}")
    assert response.status_code == 429, response.text
