"""The `hnsw` suite: N random unit vectors (384-d) in the service's `hnsw`
VectorIndex; build time, memory per vector, and single-query latency and
recall@10 against exact search over a sweep of efSearch, for fresh random
queries (the hardest case for a graph index) and near-duplicates of
database vectors."""

from __future__ import annotations

import dataclasses
import os
import time

import faiss
import numpy as np

from app.search.vector_index import HnswParams, VectorIndex
from bench.common import Log, settings
from bench.measure import OtherLoad, latency_stats, memory_kb, usable_cores

DIM, K, BATCH, WARMUP, SEED = 384, 10, 50_000, 50, 20261122
# Norm of the noise added to a database vector to make a near-duplicate query.
NOISE = 0.5
EXACT = "exact"


def normalize(x: np.ndarray) -> np.ndarray:
    for start in range(0, len(x), BATCH):  # in slices: no second N×384 temporary
        x[start : start + BATCH] /= np.linalg.norm(x[start : start + BATCH], axis=1, keepdims=True)
    return x


def run(options: dict, log: Log) -> dict:
    params = HnswParams(settings.hnsw_m, settings.hnsw_ef_construction, settings.hnsw_ef_search)
    vectors, queries, sweep = (
        options["vectors"],
        options["hnsw_queries"],
        [int(ef) for ef in options["sweep"].split(",")],
    )
    build_limit_s = options["build_limit_min"] * 60
    data = normalize(np.random.default_rng(SEED).standard_normal((vectors, DIM), dtype=np.float32))
    index, build = build_index(data, params, build_limit_s, log)
    data = data[: build["n"]]
    rng = np.random.default_rng(SEED + 1)
    source = data[rng.choice(len(data), queries, replace=False)]
    noise = rng.standard_normal((queries, DIM), dtype=np.float32) * np.float32(NOISE / np.sqrt(DIM))
    query_sets = {"random": normalize(rng.standard_normal((queries, DIM), dtype=np.float32)),
                  "near": normalize(source + noise)}  # fmt: skip
    faiss.omp_set_num_threads(usable_cores())
    flat = VectorIndex.create(DIM, "flat")
    flat.add(np.arange(len(data), dtype=np.int64), data)
    exact = {name: flat.index.search(q, K) for name, q in query_sets.items()}
    truth = {name: {"top1_score": float(sc[:, 0].mean()), "top10_score": float(sc[:, -1].mean())}
             for name, (sc, _) in exact.items()}  # fmt: skip
    truth["near"]["cosine_to_source"] = float(np.mean(np.sum(query_sets["near"] * source, axis=1)))
    other, rows = OtherLoad(), {}
    for ef in [*sorted({*sweep, params.ef_search}), EXACT]:
        searched = flat if ef == EXACT else index
        if ef != EXACT:
            index.ef_search = ef
        rows[str(ef)] = {name: time_queries(searched, q, exact[name][1]) for name, q in query_sets.items()}
        log(f"efSearch {ef}: random recall {rows[str(ef)]['random']['recall']:.3f}")
    return {"vectors": vectors, "queries": queries, "params": dataclasses.asdict(params),
            "build": build, "truth": truth, "sweep": rows, "other_share": other.measure()["other_share"],
            "faiss": faiss.__version__, "seed": SEED, "noise": NOISE}  # fmt: skip


def build_index(vectors: np.ndarray, params: HnswParams, limit_s: float, log: Log) -> tuple[VectorIndex, dict]:
    """Adds the vectors in batches, as the service would; stops adding after
    `limit_s` seconds, so a slow machine still yields a (smaller) result."""
    faiss.omp_set_num_threads(usable_cores())
    index = VectorIndex.create(DIM, "hnsw", params)
    rss0, t0 = memory_kb(os.getpid())["VmRSS"] * 1024, time.perf_counter()
    for start in range(0, len(vectors), BATCH):
        stop = min(start + BATCH, len(vectors))
        index.add(np.arange(start, stop, dtype=np.int64), vectors[start:stop])
        log(f"added {stop:,}/{len(vectors):,}")
        if time.perf_counter() - t0 > limit_s:
            break
    build_s, n = time.perf_counter() - t0, index.size
    grown = memory_kb(os.getpid())["VmRSS"] * 1024 - rss0
    return index, {"n": n, "build_s": build_s, "per_s": n / build_s, "rss_growth_mb": grown / 2**20,
                   "rss_per_vector": grown / n, "serialized_per_vector": faiss.serialize_index(index.index).nbytes / n}  # fmt: skip


def time_queries(index: VectorIndex, queries: np.ndarray, truth: np.ndarray) -> dict:
    """One query per call with one OpenMP thread, as a worker child searches;
    wall clock, and this thread's CPU time, which other processes cannot inflate."""
    faiss.omp_set_num_threads(1)
    for q in queries[:WARMUP]:
        index.search(q[None], K)
    wall, cpu, hits = [], [], []
    for q in queries:
        t0, c0 = time.perf_counter(), time.thread_time()
        hits.append({i for i, _ in index.search(q[None], K)[0]})
        wall.append((time.perf_counter() - t0) * 1000)
        cpu.append((time.thread_time() - c0) * 1000)
    return {
        **latency_stats(wall), "cpu_p95": latency_stats(cpu)["p95"],
        "recall": float(np.mean([len(h & set(t.tolist())) / K for h, t in zip(hits, truth)])),
        "top1_found": float(np.mean([t[0] in h for h, t in zip(hits, truth)])),
    }  # fmt: skip
