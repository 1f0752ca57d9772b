"""The `fairness` suite: what naive clients cost everyone else. The load
test (bench/locustfile.py) runs twice on one service as deployed: its users
alone, then with keys polling one job every 10 ms (with and without
If-None-Match) and a key submitting searches in a tight loop (free tier, all). The users' search jobs, submit to
result, are compared; the naive clients' requests and the 429s they got are
counted."""

from __future__ import annotations

import resource
import tempfile
from pathlib import Path

from bench import load, service
from bench.common import WORKER_CONCURRENCY, Log, settings
from bench.measure import cpu_seconds, group_pids
from devstack.processes import Stack

# Slower than this (p50 of the users' search jobs, with the naive clients
# against without) and the naive clients are starving the others.
TARGET_SLOWDOWN = 0.20


def run(options: dict, log: Log) -> dict:
    seconds = options["load_seconds"]
    with (
        tempfile.TemporaryDirectory(prefix="quarry-bench-fairness-") as workdir,
        service.private_service(Path(workdir)) as (stack, _key),
    ):
        start_as_deployed(stack)
        # The run makes the naive clients' keys: its key needs the admin scope.
        admin_key = stack.create_key("bench", scopes="read,write,admin", name="fairness")
        runs = {}
        for name, naive in (("alone", False), ("with_naive", True)):
            log(f"load test, {name}")
            before = cpu_by_process(stack)
            runs[name] = load.run(stack.base_url, admin_key, stack.workdir, seconds, naive=naive)
            runs[name]["cpu_s"] = {k: v - before[k] for k, v in cpu_by_process(stack).items()}
            service.check_alive(stack)
    return {"seconds": seconds, **runs, "slowdown": slowdown(runs), "target_slowdown": TARGET_SLOWDOWN}


def start_as_deployed(stack: Stack) -> None:
    stack.start_web(processes=settings.web_concurrency, threads=settings.web_threads)
    stack.start_worker(concurrency=WORKER_CONCURRENCY)
    service.warm_up_worker(stack)


def cpu_by_process(stack: Stack) -> dict[str, float]:
    """Core-seconds so far of the web, the worker, Redis and the load
    generator (locust: this process's reaped children), setup included."""
    web, worker = (process.pid for process in stack.processes[:2])  # each leads a process group
    locust = resource.getrusage(resource.RUSAGE_CHILDREN)
    return {"web": cpu_seconds(group_pids(web)), "worker": cpu_seconds(group_pids(worker)),
            "redis": cpu_seconds([stack.redis.process.pid]), "locust": locust.ru_utime + locust.ru_stime}  # fmt: skip


def slowdown(runs: dict) -> dict:
    """How much slower the users' search jobs were with the naive clients,
    per percentile: as the users saw them, and as the service timed them."""
    out = {}
    for row, label in (("search_job", "seen"), ("search_job_in_service", "in service")):
        alone, crowded = runs["alone"].get(row, {}), runs["with_naive"].get(row, {})
        out |= {f"{label} {p}": crowded[p] / alone[p] - 1 for p in ("p50", "p95") if alone.get(p) and crowded.get(p)}
    return out
