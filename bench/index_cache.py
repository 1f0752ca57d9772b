"""The `index-cache` suite: many collections searched round-robin by
concurrent clients, with INDEX_CACHE_MB far below what they all take. Each
worker pool process must stay within the budget plus the model, and the
suite reports search times with the indexes in memory (warm: as many
collections as fit) and read from their files on each search (cold: every
collection in turn, so the least recently used is always the one asked for).

Rows go straight into the database, as in the `scale` suite (random unit
vectors, made-up words); the collections are marked as indexed at
generation 1 with no files, so each one's first search builds its indexes
from SQL and writes them, as a new worker host does."""

from __future__ import annotations

import itertools
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy import select, update

from app.models import Collection
from app.search.index_store import IndexStore
from bench.common import WORKER_CONCURRENCY, Log
from bench.measure import group_pids, memory_kb
from bench.scale import fill_collection
from bench.service import private_service, run_concurrently, summarize_searches, timed_search, tracebacks
from devstack.processes import Stack

QUERY_WORDS, SEED, DIMENSION = 6, 20261204, 384


def run(options: dict, log: Log) -> dict:
    count, chunks, clients, budget = options["collections"], options["chunks"], options["clients"], options["budget_mb"]
    rng = np.random.default_rng(SEED)
    words = np.array(["".join(p) for p in itertools.product("bdfgklmnprstvz", "aeiou", "bdfgklmnprstvz", "aeiou")])
    names = [f"cache-{n:03d}" for n in range(count)]
    with tempfile.TemporaryDirectory(prefix="quarry-bench-cache-") as workdir:
        # No result cache: every search reads an index.
        with private_service(Path(workdir), INDEX_CACHE_MB=str(budget), SEARCH_CACHE_TTL_SECONDS="0") as (
            stack,
            api_key,
        ):
            stack.start_web()
            worker = stack.start_worker(concurrency=WORKER_CONCURRENCY)
            write_s = prepare(stack, names, chunks, words)
            log(f"{count} collections of {chunks} chunks written in {write_s:.0f} s")
            # The baseline: every pool process has searched (model loaded and
            # run), but holds no collection's indexes.
            assert stack.post("/api/v1/collections", json={"name": "empty"}).status_code == 201
            warmups = [(str(n), ("empty", f"warm up {n}")) for n in range(4 * WORKER_CONCURRENCY)]
            run_concurrently(lambda: stack.client(api_key), warmups, WORKER_CONCURRENCY, search)
            model_only_mb = max_child_rss_mb(worker.pid)

            def phase(label: str, targets: list[str], searches: int) -> dict:
                queries = [(str(n), (targets[n % len(targets)], " ".join(rng.choice(words, QUERY_WORDS))))
                           for n in range(searches)]  # fmt: skip
                started = time.perf_counter()
                results = run_concurrently(lambda: stack.client(api_key), queries, clients, search)
                summary = summarize_searches(results, time.perf_counter() - started)
                summary["child_rss_mb"] = max_child_rss_mb(worker.pid)
                log(f"{label}: took_ms {summary.get('took', {})}, child RSS {summary['child_rss_mb']:.0f} MB")
                return summary

            out = {"write_s": write_s, "model_only_child_rss_mb": model_only_mb}
            out["build"] = phase("first search of each (builds from SQL)", names, count)
            out["cold"] = phase("round-robin over all", names, 2 * count)
            out["index_mb"] = index_mb(stack, names[0])
            # Those that fit with a fifth to spare (document maps, rounding).
            out["warm_collections"] = min(count, max(1, int(0.8 * budget / out["index_mb"])))
            out["warm"] = phase("round-robin over those that fit", names[: out["warm_collections"]], 2 * count)
            out["tracebacks"] = tracebacks(stack.workdir)
    return {**out, "collections": count, "chunks": chunks, "clients": clients, "budget_mb": budget,
            "worker_concurrency": WORKER_CONCURRENCY}  # fmt: skip


def search(client, target: tuple[str, str]) -> dict:
    collection, query = target
    return timed_search(client, collection, {"query": query, "top_k": 10, "pipeline": "hybrid"})


def prepare(stack: Stack, names: list[str], chunks: int, words: np.ndarray) -> float:
    """The collections made over HTTP and filled with rows; seconds taken."""
    started = time.perf_counter()
    for name in names:
        assert stack.post("/api/v1/collections", json={"name": name}).status_code == 201
    engine = sa.create_engine(stack.env["DATABASE_URL"], connect_args={"timeout": 60})
    try:
        for name in names:
            fill_collection(engine, name, chunks, words)
        with engine.begin() as connection:  # indexed at generation 1, whose files no host has yet
            connection.execute(update(Collection).where(Collection.name.in_(names)).values(generation=1))
    finally:
        engine.dispose()
    return time.perf_counter() - started


def index_mb(stack: Stack, name: str) -> float:
    """What one collection's indexes take in memory, as the worker counts
    them against its budget (its document map aside), read from its files."""
    engine = sa.create_engine(stack.env["DATABASE_URL"])
    try:
        with engine.connect() as connection:
            collection_id = connection.execute(select(Collection.id).where(Collection.name == name)).scalar_one()
    finally:
        engine.dispose()
    index = IndexStore(Path(stack.env["QUARRY_VAR_DIR"]) / "indexes", DIMENSION).get(collection_id, 1)
    assert index is not None, f"{name} has no index files"
    return index.nbytes() / 2**20


def max_child_rss_mb(pgid: int) -> float:
    """The largest resident set among the worker's pool processes (each keeps
    its own index cache), in MB."""
    pids = sorted(group_pids(pgid))[1:] or group_pids(pgid)  # the parent first: it starts them
    return max(memory_kb(pid).get("VmRSS", 0) for pid in pids) / 1024
