"""The `cluster` suite: the same search load against the multi-host
topology (devstack/cluster.py: network namespaces, no shared disk) served by
one worker host, then by two. On one machine the total cannot grow with
hosts (they share its cores); what the run shows is the CPU each search
costs, per host and in all, with one host and with two: a cost that grew
with hosts would be coordination between them. Two things grow it without
any coordination, and the run measures each: a host's micro-batches hold
fewer searches when two hosts share the load (the mean batch size, from
each worker host's own metrics), and two workers whose torch threads are
each sized for every core contend for the same two (a third phase: two
hosts with one torch thread each, WORKER_CPUS=1).

A collection of rows written straight into the database (random unit
vectors, made-up words, as in the `scale` suite); the result cache is off,
so every search runs on a worker."""

from __future__ import annotations

import itertools
import tempfile
import threading
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa

from bench.common import Log
from bench.measure import cpu_seconds, mean_batch, search_batches
from bench.scale import fill_collection
from bench.service import summarize_searches, timed_search
from devstack.client import Client

COLLECTION, QUERY_WORDS, SEED = "cluster-bench", 6, 20261204
WORKER_ROLES = ("worker1", "worker2")


def run(options: dict, log: Log) -> dict:
    from devstack.cluster import Cluster

    rng = np.random.default_rng(SEED)
    words = np.array(["".join(p) for p in itertools.product("bdfgklmnprstvz", "aeiou", "bdfgklmnprstvz", "aeiou")])
    with tempfile.TemporaryDirectory(prefix="quarry-bench-cluster-") as workdir:
        cluster = Cluster(Path(workdir), SEARCH_CACHE_TTL_SECONDS="0").start()
        try:
            key = cluster.create_key("bench")
            cluster.authenticate(key)
            prepare(cluster, options["chunks"], words)
            clients, seconds = options["clients"], options["seconds"]

            def phase(label: str) -> dict:
                queries = iter([" ".join(rng.choice(words, QUERY_WORDS)) for _ in range(100_000)])
                hosts = {role: host for role, host in cluster.hosts.items() if role != "data"}
                before = {role: cpu_seconds(host.pids()) for role, host in hosts.items()}
                batches_before = {
                    role: search_batches(cluster.hosts[role].var_dir / "metrics") for role in WORKER_ROLES
                }
                started = time.perf_counter()
                results = closed_loop(lambda: Client(cluster.base_url, key), queries, clients, seconds)
                wall = time.perf_counter() - started
                summary = summarize_searches(results, wall)
                ok = summary["n"] - summary["failed"]
                cpu = {role: cpu_seconds(host.pids()) - before[role] for role, host in hosts.items()}
                summary["cpu_ms_per_search"] = {role: 1000 * s / ok for role, s in cpu.items()} if ok else {}
                summary["mean_batch"] = mean_batches(batches_before, cluster)
                log(f"{label}: {summary['qps']:.1f} searches/s, CPU ms per search {summary['cpu_ms_per_search']}, "
                    f"mean batch {summary['mean_batch']}")  # fmt: skip
                return summary

            cluster.consume("worker2", "search", on=False)
            out = {"one_host": phase("one worker host")}
            cluster.consume("worker2", "search", on=True)
            out["two_hosts"] = phase("two worker hosts")
            for role in WORKER_ROLES:
                cluster.restart_worker(role, WORKER_CPUS="1")
            out["two_hosts_one_thread"] = phase("two worker hosts, one torch thread each")
        finally:
            cluster.stop()
    return {**out, "chunks": options["chunks"], "clients": clients, "seconds": seconds}


def mean_batches(before: dict, cluster) -> dict[str, float]:
    """Mean searches per micro-batch on each worker host since `before`."""
    means = {}
    for role, counts in before.items():
        mean = mean_batch(counts, search_batches(cluster.hosts[role].var_dir / "metrics"))
        if mean is not None:
            means[role] = round(mean, 2)
    return means


def closed_loop(new_client, queries, clients: int, seconds: float) -> list[dict]:
    """`clients` threads, each sending its next search when its last one is
    final, until `seconds` have passed; every search's result."""
    deadline = time.perf_counter() + seconds
    results: list[dict] = []
    lock = threading.Lock()

    def client_loop() -> None:
        client = new_client()
        while time.perf_counter() < deadline:
            with lock:
                query = next(queries)
            result = search(client, query)
            with lock:
                results.append(result)

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def search(client: Client, query: str) -> dict:
    return timed_search(client, COLLECTION, {"query": query, "top_k": 10, "pipeline": "hybrid"})


def prepare(cluster, chunks: int, words: np.ndarray) -> None:
    """The collection, its rows, and its index built on each worker host by a first search."""
    assert cluster.post("/api/v1/collections", json={"name": COLLECTION}).status_code == 201
    engine = sa.create_engine(cluster.local_database_url)
    try:
        fill_collection(engine, COLLECTION, chunks, words)
        with engine.begin() as connection:
            connection.execute(sa.text("UPDATE collections SET generation = 1 WHERE name = :n"), {"n": COLLECTION})
    finally:
        engine.dispose()
    for role in ("worker1", "worker2"):  # each host builds its own index files from SQL
        other = "worker2" if role == "worker1" else "worker1"
        cluster.consume(other, "search", on=False)
        job = cluster.submit(f"/api/v1/collections/{COLLECTION}/search", {"query": "warm up"})
        assert cluster.wait_job(job["id"], timeout=600)["status"] == "succeeded"
        cluster.consume(other, "search", on=True)
