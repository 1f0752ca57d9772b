"""The `scale` suite: a `flat` and an `hnsw` collection of N chunks each
(default 200,000) searched over HTTP as jobs: index build time, `took_ms`
and client latency per pipeline, recall@10 of hnsw against flat, worker
memory. Rows go straight into the database (ingest embeds ~40 chunks/s on
2 cores, and this suite measures search); each chunk is 60 random made-up
words with a random unit vector, seeded, the same rows in both collections."""

from __future__ import annotations

import hashlib
import itertools
import subprocess
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from app.models import Chunk, Collection, Document, Tenant, new_id
from bench.common import TOP_K, WORKER_CONCURRENCY, Log, settings
from bench.measure import CpuMeter, group_pids, memory_kb
from bench.service import private_service, summarize_searches, timed_search, tracebacks
from devstack.processes import BIN, PROJECT_ROOT, Stack

KINDS = ("flat", "hnsw")
# "empty" gets no rows: its rebuild is the CLI's fixed cost (process start, imports, model load).
COLLECTIONS = {"flat": "flat", "hnsw": "hnsw", "empty": "flat"}
DIM, CHUNKS_PER_DOC, WORDS_PER_CHUNK, QUERY_WORDS, GROUPS = 384, 4, 60, 6, 10
BATCH = 10_000  # chunk rows per bulk insert; whole documents per batch
VOCABULARY, SEED, WARMUP = 2000, 20261201, 5
# (label, pipeline, searches, filters); every query runs against both collections.
RUNS = (("dense", "dense", 200, None), ("hybrid", "hybrid", 100, None), ("dense, group=3", "dense", 50, {"group": 3}))
REBUILD_TIMEOUT_S = 3600  # an hnsw build of 200k vectors takes minutes on 2 cores


def run(options: dict, log: Log) -> dict:
    chunks, share = options["chunks"], options["search_share"]
    syllables = [c + v for c, v in itertools.product("bdfgklmnprstvz", "aeiou")]
    words = np.random.default_rng(SEED).choice(
        sorted(a + b for a, b in itertools.product(syllables, repeat=2)), VOCABULARY, replace=False
    )
    rng = np.random.default_rng(SEED + 1)
    queries = {label: [" ".join(rng.choice(words, QUERY_WORDS)) for _ in range(max(1, int(n * share)))]
               for label, _, n, _ in RUNS}  # fmt: skip
    with tempfile.TemporaryDirectory(prefix="quarry-bench-scale-") as workdir:
        with private_service(Path(workdir)) as (stack, _key):
            stack.start_web()
            worker = stack.start_worker(concurrency=WORKER_CONCURRENCY)
            out = prepare(stack, chunks, words, log)
            out["worker_pss_before_mb"] = worker_pss_mb(worker.pid)
            for kind in KINDS:  # POSTed at once, so every worker child loads the indexes
                warm = [
                    stack.submit(f"/api/v1/collections/scale-{kind}/search", {"query": f"warm {n}"})
                    for n in range(WARMUP)
                ]
                for job in warm:
                    assert stack.wait_job(job["id"], timeout=600)["status"] == "succeeded", job
            meter = CpuMeter({"web": stack.processes[0].pid, "worker": worker.pid}, stack.redis.process.pid)
            out["searches"] = run_searches(stack, queries, log)
            meter.phase("searches")
            out.update(cpu=meter.phases["searches"], worker_pss_after_mb=worker_pss_mb(worker.pid),
                       tracebacks=tracebacks(stack.workdir))  # fmt: skip
    hnsw = ("hnsw_m", "hnsw_ef_construction", "hnsw_ef_search")
    return {**out, "chunks": chunks, "hnsw": {name: getattr(settings, name) for name in hnsw}}


def prepare(stack: Stack, chunks: int, words: np.ndarray, log: Log) -> dict:
    """The collections made over HTTP, filled with rows, indexed with the operator's CLI."""
    for kind, index_type in COLLECTIONS.items():
        response = stack.post("/api/v1/collections", json={"name": f"scale-{kind}", "index_type": index_type})
        assert response.status_code == 201, response.text
    engine = sa.create_engine(stack.env["DATABASE_URL"], connect_args={"timeout": 60})
    out = {"write_s": {kind: fill_collection(engine, f"scale-{kind}", chunks, words) for kind in KINDS}}
    with Session(engine) as session:  # the CLI takes the tenant's name
        tenant = session.scalars(select(Tenant.name).join(Collection, Collection.tenant_id == Tenant.id)).first()
    engine.dispose()
    out["rebuild_s"] = {kind: rebuild_index(stack, f"scale-{kind}", tenant) for kind in COLLECTIONS}
    log(f"rows written {out['write_s']}; index rebuild {out['rebuild_s']}")
    out["collections"] = {kind: stack.get(f"/api/v1/collections/scale-{kind}").json() for kind in KINDS}
    return out


def fill_collection(engine: sa.Engine, name: str, chunks: int, words: np.ndarray) -> float:
    """`chunks` rows in chunks/4 documents, one transaction per batch; seconds taken.
    Each batch is seeded by its start, so both collections get the same rows."""
    started = time.perf_counter()
    with Session(engine) as session:
        collection = session.scalars(select(Collection).where(Collection.name == name)).one()
        owner = {"tenant_id": collection.tenant_id, "collection_id": collection.id}
        for start in range(0, chunks, BATCH):
            rng = np.random.default_rng([SEED, start])
            count = min(BATCH, chunks - start)
            texts = [" ".join(row) for row in words[rng.integers(0, len(words), (count, WORDS_PER_CHUNK))]]
            vectors = rng.standard_normal((count, DIM), dtype=np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            insert_rows(session, owner, start, texts, vectors)
            session.commit()
    return time.perf_counter() - started


def insert_rows(session: Session, owner: dict, start: int, texts: list[str], vectors: np.ndarray) -> None:
    documents, chunks = [], []
    for first in range(0, len(texts), CHUNKS_PER_DOC):
        number, doc_id, parts = (start + first) // CHUNKS_PER_DOC, new_id(), texts[first : first + CHUNKS_PER_DOC]
        documents.append({**owner, "id": doc_id, "external_id": f"doc-{number}", "status": "ready",
                          "content_hash": hashlib.sha256(" ".join(parts).encode()).hexdigest(),
                          "meta": {"group": number % GROUPS}, "chunk_count": len(parts)})  # fmt: skip
        offset = 0
        for ordinal, part in enumerate(parts):
            chunks.append({**owner, "document_id": doc_id, "ordinal": ordinal, "text": part, "start_char": offset,
                           "end_char": offset + len(part), "embedding": vectors[first + ordinal].astype("<f4").tobytes()})  # fmt: skip
            offset += len(part) + 1
    session.execute(insert(Document), documents)
    session.execute(insert(Chunk), chunks)


def rebuild_index(stack: Stack, name: str, tenant: str) -> float:
    """`flask --app wsgi index rebuild`, as Stack.flask runs it but with a longer limit; seconds."""
    started = time.perf_counter()
    subprocess.run([str(BIN / "flask"), "--app", "wsgi", "index", "rebuild", name, "--tenant", tenant],
                   cwd=PROJECT_ROOT, env=stack.env, capture_output=True, timeout=REBUILD_TIMEOUT_S, check=True)  # fmt: skip
    return time.perf_counter() - started


def run_searches(stack: Stack, queries: dict[str, list[str]], log: Log) -> dict:
    """Each run's searches one at a time, every query against flat then hnsw
    (interleaved, so load from outside the run falls on both alike)."""
    out = {}
    for label, pipeline, _, filters in RUNS:
        raw: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        for query in queries[label]:
            body = {"query": query, "top_k": TOP_K, "pipeline": pipeline, **({"filters": filters} if filters else {})}
            for kind in KINDS:
                raw[kind].append(timed_search(stack, f"scale-{kind}", body))
        out[label] = {kind: summarize(results) for kind, results in raw.items()}
        out[label]["hnsw"]["recall_vs_flat"] = recall_at_k(raw["hnsw"], raw["flat"])
        log(f"{label}: took_ms p50 " + ", ".join(f"{k} {out[label][k]['took'].get('p50', 0):.1f}" for k in KINDS))
    return out


def summarize(results: list[dict]) -> dict:
    ok = [r for r in results if "error" not in r]
    full = [[hit["score"] for hit in r["hits"]] for r in ok if len(r["hits"]) == TOP_K]
    return {**{k: v for k, v in summarize_searches(results, 1.0).items() if k in ("n", "failed", "errors", "latency", "took")},
            "cached": sum(r["cached"] for r in ok),
            # How far the top stands out from the rest: the mean score of the 1st and the last hit.
            "first_score": float(np.mean([s[0] for s in full])) if full else None,
            "last_score": float(np.mean([s[-1] for s in full])) if full else None}  # fmt: skip


def recall_at_k(approximate: list[dict], exact: list[dict]) -> float | None:
    """Mean share of flat's top k that hnsw returned, matched by chunk text (chunk ids differ)."""
    shares = [len({h["text"] for h in a["hits"]} & {h["text"] for h in e["hits"]}) / len(e["hits"])
              for a, e in zip(approximate, exact) if "error" not in a and "error" not in e and e["hits"]]  # fmt: skip
    return float(np.mean(shares)) if shares else None


def worker_pss_mb(pgid: int) -> float:
    return sum(memory_kb(pid).get("Pss", 0) for pid in group_pids(pgid)) / 1024
