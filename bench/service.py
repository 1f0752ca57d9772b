"""A private Quarry for a suite (its real processes, started with devstack,
on a temp SQLite database and a private Redis), and what the suites measure
of it over HTTP: timed search jobs, one at a time or from closed-loop
client threads, and corpus ingest jobs."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path

from app.services.jobs import TERMINAL, JobStatus
from bench.common import BENCH_LIMITS, BENCH_TIER, SEARCH_TIMEOUT, WORKER_CONCURRENCY, Log
from bench.dataset import api_documents
from bench.measure import epoch_seconds, latency_stats
from devstack.client import Client, JobNotFinal
from devstack.processes import RedisServer, Stack, create_database

# The shortest wait between polls of a search, whatever its hint says.
SEARCH_POLL_MIN_S = 0.020
INGEST_POLL_S = 1.0


class StackDied(RuntimeError):
    """A service process exited while the suite was using it."""


def check_alive(stack: Stack) -> None:
    for process in stack.processes:
        if (code := process.poll()) is not None:
            raise StackDied(f"service process {process.pid} ({' '.join(map(str, process.args[:3]))}) exited {code}")


@contextmanager
def private_service(workdir: Path, **env: str) -> Iterator[tuple[Stack, str]]:
    """Redis, a migrated database and a (not yet started) stack, with an API
    key made the operator's way (the CLI); all stopped on the way out."""
    redis = RedisServer(workdir / "redis").start()
    database_url, drop_database = create_database(workdir / "db")
    (workdir / "stack").mkdir(parents=True, exist_ok=True)
    stack = Stack(workdir / "stack", database_url, redis, **{**BENCH_LIMITS, **env})
    try:
        api_key = stack.create_key("bench", scopes="read,write", tier=BENCH_TIER, name="bench")
        stack.authenticate(api_key)
        yield stack, api_key
    finally:
        stack.stop()
        redis.stop()
        drop_database()


def with_retries(run: Callable[[int], dict], attempts: int, log: Log) -> dict:
    """run(attempt), started over when something outside the suite kills a
    service process (other people's tooling shares the machine)."""
    for attempt in range(1, attempts + 1):
        try:
            return run(attempt)
        except StackDied as exc:
            log(f"service interrupted: {exc}")
            if attempt == attempts:
                raise
    raise ValueError(f"attempts must be at least 1, not {attempts}")


def tracebacks(stackdir: Path) -> int:
    """Tracebacks in the service's logs."""
    return sum(log.read_text(errors="replace").count("Traceback (most recent") for log in stackdir.glob("*.log"))


def warm_up_worker(client: Client) -> None:
    """One tiny ingest job per pool process: the worker says "ready" before
    its children have loaded the model, and a measurement should not wait for that."""
    jobs = [client.submit("/api/v1/collections/warmup/documents", {"documents": [{"text": f"warm-up {n}"}]})
            for n in range(WORKER_CONCURRENCY)]  # fmt: skip
    for job in jobs:
        if (final := client.wait_job(job["id"], timeout=300))["status"] != JobStatus.SUCCEEDED:
            raise RuntimeError(f"warm-up ingest {job['id']} ended {final['status']}: {final['error']}")


def timed_search(client: Client, collection: str, body: dict) -> dict:
    """POST a search job and poll it as its hints say until final, timed as
    the client sees it; {"error": ...} when it did not succeed."""
    posted_wall, t0 = time.time(), time.perf_counter()
    try:
        accepted = client.submit(f"/api/v1/collections/{collection}/search", body)
        job, polls = client.poll(accepted, SEARCH_TIMEOUT, min_wait=SEARCH_POLL_MIN_S)
    except (RuntimeError, OSError) as exc:  # JobNotFinal, a refused POST, a dropped connection
        return {"error": f"{type(exc).__name__}: {exc}"}
    seen = time.perf_counter()
    if job["status"] != JobStatus.SUCCEEDED:
        return {"error": f"job {job['id']} {job['status']}: {job['error']}"}
    created, started, finished = (epoch_seconds(job[k]) for k in ("created_at", "started_at", "finished_at"))
    seen_wall = posted_wall + (seen - t0)
    phases = {"post_to_row": created - posted_wall, "queue": started - created, "run": finished - started,
              "notice": seen_wall - finished, "created_to_finished": finished - created}  # fmt: skip
    return {
        "latency_ms": (seen - t0) * 1000, "took_ms": job["result"]["took_ms"], "polls": polls,
        "attempts": job["attempts"], "hits": job["result"]["hits"], "cached": bool(job["result"].get("cached")),
        "phases_ms": {name: seconds * 1000 for name, seconds in phases.items()},
    }  # fmt: skip


def run_concurrently(new_client: Callable[[], Client], queries: list, clients: int, search: Callable) -> list[dict]:
    """search(client, query) for every (query id, query) once, from `clients`
    closed-loop threads with an HTTP session each: a thread sends its next
    search when its last one is final."""
    local = threading.local()

    def one(item: tuple[str, str]) -> dict:
        local.client = getattr(local, "client", None) or new_client()
        try:
            return {**search(local.client, item[1]), "qid": item[0]}
        except Exception as exc:  # noqa: BLE001 - counted as a failed search, not raised
            return {"error": f"{type(exc).__name__}: {exc}", "qid": item[0]}

    with ThreadPoolExecutor(clients) as pool:
        return list(pool.map(one, queries))


def summarize_searches(results: list[dict], wall_s: float) -> dict:
    """Throughput and percentiles of the searches that succeeded; counts of the rest."""
    ok = [r for r in results if "error" not in r]
    summary = {"n": len(results), "failed": len(results) - len(ok), "wall_s": wall_s,
               "qps": len(ok) / wall_s if wall_s else 0, "latency": latency_stats([r["latency_ms"] for r in ok]),
               "errors": [r["error"] for r in results if "error" in r][:5]}  # fmt: skip
    if ok and "took_ms" in ok[0]:  # a Quarry search job, not the peer's plain request
        summary.update(
            took=latency_stats([r["took_ms"] for r in ok]),
            polls_mean=sum(r["polls"] for r in ok) / len(ok),
            retried=sum(1 for r in ok if r["attempts"] > 1),
            phases={phase: latency_stats([r["phases_ms"][phase] for r in ok]) for phase in ok[0]["phases_ms"]},
        )
    return summary


def submit_ingest(client: Client, collection: str, documents: list[dict], batch: int | None) -> list[dict]:
    """One ingest job per `batch` documents (None: one job for all), all submitted before any poll."""
    size = batch or len(documents)
    path = f"/api/v1/collections/{collection}/documents"
    return [client.submit(path, {"documents": api_documents(documents[i : i + size])})
            for i in range(0, len(documents), size)]  # fmt: skip


def wait_for_jobs(client: Client, jobs: list[dict], timeout: float, alive: Callable[[], None]) -> list[dict]:
    """The final jobs, in order, polled every INGEST_POLL_S (faster polling
    would take CPU from the ingest it measures); `alive` raises if a service process died."""
    final: dict[str, dict] = {}
    deadline = time.monotonic() + timeout
    while len(final) < len(jobs):
        for job in jobs:
            if job["id"] not in final and (now := client.get(f"/api/v1/jobs/{job['id']}").json())["status"] in TERMINAL:
                final[job["id"]] = now
        if len(final) < len(jobs):
            alive()
            if time.monotonic() > deadline:
                raise JobNotFinal(f"ingest not finished after {timeout:.0f} s")
            time.sleep(INGEST_POLL_S)
    return [final[job["id"]] for job in jobs]


def summarize_ingest(jobs: list[dict], submit_s: float, wall_s: float) -> dict:
    done = [job["result"] for job in jobs if job["status"] == JobStatus.SUCCEEDED]
    documents, chunks = sum(r["documents"] for r in done), sum(r["chunks"] for r in done)
    # First job created -> last job finished, on the service's clock.
    server_s = max(epoch_seconds(j["finished_at"]) for j in jobs) - min(epoch_seconds(j["created_at"]) for j in jobs)
    return {
        "jobs": len(jobs), "failed_jobs": len(jobs) - len(done), "documents": documents, "chunks": chunks,
        "submit_s": submit_s, "wall_s": wall_s, "server_s": server_s,
        "docs_per_s": documents / wall_s, "chunks_per_s": chunks / wall_s, "server_chunks_per_s": chunks / server_s,
    }  # fmt: skip


def ingest_corpus(client: Client, collection: str, documents: list[dict], batch: int | None, timeout: float,
                  alive: Callable[[], None]) -> dict:  # fmt: skip
    t0 = time.perf_counter()
    jobs = submit_ingest(client, collection, documents, batch)
    submit_s = time.perf_counter() - t0
    final = wait_for_jobs(client, jobs, timeout, alive)
    return summarize_ingest(final, submit_s, time.perf_counter() - t0)
