"""The service run: start Quarry's real processes (devstack), drive the
ingest and search phases over HTTP (bench.client), and record what each
process used."""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from itertools import cycle
from pathlib import Path

from app.config import settings
from bench import client as driver
from bench import ingest_probe as probes
from bench.dataset import SciFact
from bench.formatting import fmt
from bench.load import run_load_test
from bench.parameters import (
    BENCH_SERVICE_ENV,
    BENCH_TIER,
    CLIENT_THREADS,
    COLLECTION,
    LOAD_SECONDS,
    LOAD_USERS,
    WORKER_CONCURRENCY,
)
from bench.system import CpuMeter, MemorySampler
from devstack.client import Client
from devstack.processes import RedisServer, Stack, create_database

Log = Callable[[str], None]


class StackDied(RuntimeError):
    """A service process exited while the benchmark was using it."""


def check_alive(stack: Stack) -> None:
    for process in stack.processes:
        code = process.poll()
        if code is not None:
            raise StackDied(
                f"service process {process.pid} ({' '.join(map(str, process.args[:3]))} ...) "
                f"exited with {code} at {dt.datetime.now().strftime('%H:%M:%S')} without being asked to"
            )


def run_service_with_retries(data: SciFact, workdir: Path, ingest_timeout: float, attempts: int,
                             retry_wait: float, log: Log, load_test: bool = True) -> dict:
    """The service run, started over from scratch when something outside the
    benchmark kills its processes (seen: a broad `pkill` of every
    gunicorn/celery of this project when a developer's local service
    restarts)."""
    interruptions = []
    for attempt in range(1, attempts + 1):
        try:
            out = run_service(data, workdir / f"service-{attempt}", ingest_timeout, log, load_test)
            return {**out, "interruptions": interruptions}
        except StackDied as exc:
            interruptions.append(str(exc))
            log(f"service phase interrupted: {exc}")
            if attempt == attempts:
                raise
            log(f"starting the service phase again in {retry_wait:.0f} s")
            time.sleep(retry_wait)
    raise ValueError(f"attempts must be at least 1, not {attempts}")


def run_service(data: SciFact, workdir: Path, ingest_timeout: float, log: Log, load_test: bool = True) -> dict:
    with private_service(workdir) as (stack, api_key):
        try:
            out = measure_service(stack, api_key, data, ingest_timeout, log, load_test)
        except StackDied:
            raise
        except Exception:
            check_alive(stack)  # a dead process explains the failure: say so
            raise
    out["log_findings"] = log_findings(stack.workdir)
    return out


@contextmanager
def private_service(workdir: Path) -> Iterator[tuple[Stack, str]]:
    """Redis, a migrated SQLite database and the (not yet started) web and
    worker processes, with an API key made the operator's way (the CLI);
    all stopped and removed on the way out."""
    redis = RedisServer(workdir / "redis").start()
    database_url, drop_database = create_database(workdir / "db")
    stackdir = workdir / "stack"
    stackdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(stackdir, database_url, redis, **BENCH_SERVICE_ENV)
    try:
        api_key = stack.create_key("bench", scopes="read,write", tier=BENCH_TIER, name="bench")
        stack.authenticate(api_key)
        yield stack, api_key
    finally:
        stack.stop()
        redis.stop()
        drop_database()


def measure_service(stack: Stack, api_key: str, data: SciFact, ingest_timeout: float, log: Log,
                    load_test: bool = True) -> dict:
    started = time.perf_counter()
    stack.start_web(processes=settings.web_concurrency, threads=settings.web_threads)  # as deployed
    worker = stack.start_worker(concurrency=WORKER_CONCURRENCY)
    web = stack.processes[0]
    out: dict = {"startup_s": time.perf_counter() - started}
    log(f"service up in {out['startup_s']:.1f} s (web pid {web.pid}, worker pgid {worker.pid})")
    sampler = MemorySampler({"worker": worker.pid, "web": web.pid}).start()
    try:
        started = time.perf_counter()
        driver.warm_up_worker(stack)
        out["warmup_ingest_s"] = time.perf_counter() - started
        log(f"worker warm (model loaded in its children) {out['warmup_ingest_s']:.1f} s after 'ready'")
        meter = CpuMeter({"web": web.pid, "worker": worker.pid}, redis_pid=stack.redis.process.pid)
        alive = lambda: check_alive(stack)  # noqa: E731
        texts = cycle(text for _, text in data.queries)
        idle = probes.idle_probes(stack, data.documents, texts, ingest_timeout, alive)
        log(f"searches on the idle service: client p50 {fmt(idle['latency'].get('p50'))} ms")
        meter.phase("idle probes")
        out["ingest"], during = probes.ingest_with_probes(stack, data.documents, texts, ingest_timeout, alive)
        out["search_during_ingest"] = probes.during_ingest_summary(idle, during)
        log(f"searches during the ingest: client p50 {fmt(during['latency'].get('p50'))} ms")
        log_ingest(out["ingest"], log)
        check_alive(stack)
        out["collection"] = stack.get(f"/api/v1/collections/{COLLECTION}").json()
        meter.phase("ingest")
        out.update(measure_searches(stack, lambda: stack.client(api_key), data.queries, meter, log))
        if load_test:
            log(f"load test: {LOAD_USERS} locust users for {LOAD_SECONDS} s")
            out["load"] = run_load_test(stack.base_url, api_key, stack.workdir, stack.workdir / "web.log")
            log(f"load test: {out['load'].get('summary') or out['load']}")
            check_alive(stack)
            meter.phase("load test")
        else:
            out["load"] = {"skipped": "`--no-load` was given"}
        out["cpu_by_phase"] = meter.phases
    finally:
        out["memory"] = sampler.stop()
    return out


def measure_searches(stack: Stack, new_client: Callable[[], Client], queries: list[tuple[str, str]],
                     meter: CpuMeter, log: Log) -> dict:
    """Warm-up, then every query sequentially, then from CLIENT_THREADS
    clients at once; one CPU phase each."""
    driver.warm_up_searches(new_client, queries)
    meter.phase("warm-up")

    started = time.perf_counter()
    sequential = driver.run_sequentially(new_client(), queries, log)
    sequential_summary = driver.summarize_searches(sequential, time.perf_counter() - started)
    log_searches("sequential", sequential_summary, log)
    meter.phase("sequential")

    started = time.perf_counter()
    concurrent = driver.run_concurrently(new_client, queries)
    concurrent_summary = driver.summarize_searches(concurrent, time.perf_counter() - started)
    check_alive(stack)
    meter.phase("concurrent")
    log_searches(f"concurrent x{CLIENT_THREADS}", concurrent_summary, log)

    rankings = driver.rankings(sequential)
    concurrent_rankings = driver.rankings(concurrent)
    concurrent_summary["clients"] = CLIENT_THREADS
    concurrent_summary["same_rankings_as_sequential"] = sum(
        1 for qid, ranked in concurrent_rankings.items() if ranked == rankings.get(qid)
    )
    return {
        "sequential": sequential_summary,
        "concurrent": concurrent_summary,
        "rankings": rankings,
        "errors": [r["error"] for r in sequential + concurrent if r.get("error")],
    }


def log_ingest(ingest: dict, log: Log) -> None:
    log(
        f"ingest: {ingest['documents']} docs, {ingest['chunks']} chunks in {ingest['wall_s']:.1f} s "
        f"({ingest['docs_per_s']:.1f} docs/s, {ingest['chunks_per_s']:.1f} chunks/s); "
        f"statuses {sorted(set(ingest['statuses']))}"
    )


def log_searches(name: str, summary: dict, log: Log) -> None:
    log(
        f"{name}: {summary['latency']['n']} ok, {summary['failed']} failed, {summary['qps']:.2f} q/s, "
        f"p50 {summary['latency'].get('p50', float('nan')):.1f} ms, "
        f"p95 {summary['latency'].get('p95', float('nan')):.1f} ms"
    )


def log_findings(stackdir: Path) -> dict:
    """What the service logs say went wrong, if anything, per log file."""
    findings = {}
    for logfile in sorted(stackdir.glob("*.log")):
        text = logfile.read_text(errors="replace")
        lines = text.splitlines()
        findings[logfile.name] = {
            "tracebacks": text.count("Traceback (most recent call last)"),
            "errors": sum(1 for line in lines if _is_level(line, "ERROR")),
            "warnings": sum(1 for line in lines if _is_level(line, "WARNING")),
            "database_locked": text.count("database is locked"),
            "first_error_lines": [
                line[:300] for line in lines if "Traceback" in line or _is_level(line, "ERROR")
            ][:5],
        }
    return findings


def _is_level(line: str, level: str) -> bool:
    """Whether a gunicorn or Celery log line is logged at `level`."""
    return f" {level} " in line or f"] {level}" in line
