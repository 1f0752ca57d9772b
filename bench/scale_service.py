#!/usr/bin/env python
"""`make bench-scale`: a `flat` and an `hnsw` collection of N chunks each
(default 200,000) searched over HTTP as jobs: index build time, `took_ms` and
client latency per pipeline, recall@10 of hnsw against flat, worker memory, in
its own section of docs/benchmarks.md. Rows go straight into the database:
ingest embeds ~40 chunks/s here, and this benchmark measures search."""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import itertools
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import sqlalchemy as sa
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

# As in bench/run.py: the project root goes first on sys.path, so `app`, `bench` and `devstack` import.
ROOT = Path(__file__).resolve().parent.parent
if not __package__:
    sys.path[0] = str(ROOT)

from app.config import settings  # noqa: E402
from app.models import Chunk, Collection, Document, Tenant, new_id  # noqa: E402
from app.services.jobs import JobStatus  # noqa: E402
from bench.client import poll_until_final  # noqa: E402
from bench.parameters import (  # noqa: E402
    DEFAULT_OUTPUT,
    SCALE_SECTION,
    SEARCH_POLL_INTERVAL,
    SEARCH_TIMEOUT,
    TOP_K,
    WORKER_CONCURRENCY,
)
from bench.report import fmt, write_section  # noqa: E402
from bench.service import log_findings, private_service  # noqa: E402
from bench.system import CpuMeter, code_words, group_pids, machine_info, memory_kb, pss_kb  # noqa: E402
from bench.timing import latency_stats  # noqa: E402
from devstack.processes import BIN, PROJECT_ROOT, Stack  # noqa: E402

SECTION = SCALE_SECTION
KINDS = ("flat", "hnsw")
# Collection name suffix -> index type. "empty" gets no rows: its rebuild is
# the CLI's fixed cost (process start, imports, model load).
COLLECTIONS = {"flat": "flat", "hnsw": "hnsw", "empty": "flat"}
DIM, CHUNKS_PER_DOC, WORDS_PER_CHUNK, QUERY_WORDS, GROUPS = 384, 4, 60, 6, 10
BATCH = 10_000  # chunk rows per bulk insert; a multiple of CHUNKS_PER_DOC, so whole documents per batch
VOCABULARY, SEED, WARMUP = 2000, 20261201, 5
# (label, pipeline, searches, filters); every query runs against both collections.
RUNS = (("dense", "dense", 200, None), ("hybrid", "hybrid", 100, None),
        ("dense, filter group=3", "dense", 50, {"group": 3}))
# Stack.flask stops a command after 120 s (enough for the tests' commands);
# an hnsw build of 200k vectors takes minutes on 2 cores.
REBUILD_TIMEOUT = 3600


def log(message: str) -> None:
    print(f"{dt.datetime.now():%H:%M:%S} {message}", flush=True)


def vocabulary() -> np.ndarray:
    """VOCABULARY made-up two-syllable words, the same on every run: unique
    random texts without depending on a dictionary file."""
    syllables = [c + v for c, v in itertools.product("bdfgklmnprstvz", "aeiou")]
    words = sorted(a + b for a, b in itertools.product(syllables, repeat=2))
    return np.random.default_rng(SEED).choice(words, VOCABULARY, replace=False)


def chunk_batch(words: np.ndarray, start: int, stop: int) -> tuple[list[str], np.ndarray]:
    """Texts and unit vectors of chunks [start, stop), seeded by the batch:
    both collections get the same rows without holding N vectors at once."""
    rng = np.random.default_rng([SEED, start])
    texts = [" ".join(row) for row in words[rng.integers(0, len(words), (stop - start, WORDS_PER_CHUNK))]]
    vectors = rng.standard_normal((stop - start, DIM), dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return texts, vectors


def fill_collection(engine: sa.Engine, name: str, chunks: int, words: np.ndarray) -> float:
    """`chunks` rows in chunks/4 documents, one transaction per batch; seconds taken."""
    started = time.perf_counter()
    with Session(engine) as session:
        collection = session.scalars(select(Collection).where(Collection.name == name)).one()
        for start in range(0, chunks, BATCH):
            texts, vectors = chunk_batch(words, start, min(start + BATCH, chunks))
            insert_batch(session, collection, start, texts, vectors)
            session.commit()
    return time.perf_counter() - started


def insert_batch(session: Session, collection: Collection, start: int, texts: list[str], vectors: np.ndarray) -> None:
    owner = {"tenant_id": collection.tenant_id, "collection_id": collection.id}
    documents, chunks = [], []
    for first in range(0, len(texts), CHUNKS_PER_DOC):
        number, doc_id = (start + first) // CHUNKS_PER_DOC, new_id()
        parts, offset = texts[first : first + CHUNKS_PER_DOC], 0
        documents.append({**owner, "id": doc_id, "external_id": f"doc-{number}", "status": "ready",
                          "content_hash": hashlib.sha256(" ".join(parts).encode()).hexdigest(),
                          "meta": {"group": number % GROUPS}, "chunk_count": len(parts)})
        for ordinal, part in enumerate(parts):
            chunks.append({**owner, "document_id": doc_id, "ordinal": ordinal, "text": part,
                           "start_char": offset, "end_char": offset + len(part),
                           "embedding": vectors[first + ordinal].astype("<f4").tobytes()})
            offset += len(part) + 1
    session.execute(insert(Document), documents)
    session.execute(insert(Chunk), chunks)


def rebuild_index(stack: Stack, name: str, tenant: str) -> float:
    """The operator's `flask --app wsgi index rebuild`, run as Stack.flask runs
    it (same command, directory, environment) but with a longer limit; seconds."""
    started = time.perf_counter()
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "wsgi", "index", "rebuild", name, "--tenant", tenant],
        cwd=PROJECT_ROOT, env=stack.env, capture_output=True, text=True, timeout=REBUILD_TIMEOUT, check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"index rebuild {name} exited {done.returncode}: {done.stderr[-2000:]}")
    return time.perf_counter() - started


def search_body(query: str, pipeline: str, filters: dict | None) -> dict:
    return {"query": query, "top_k": TOP_K, "pipeline": pipeline, **({"filters": filters} if filters else {})}


def timed_search(stack: Stack, collection: str, body: dict) -> dict:
    """POST a search job and poll it as its hints say until final;
    latency = POST until the poll that saw it final."""
    t0 = time.perf_counter()
    response = stack.post(f"/api/v1/collections/{collection}/search", json=body)
    if response.status_code != 202:
        return {"error": f"POST {response.status_code}: {response.text[:300]}"}
    accepted = response.json()
    job_id = accepted["id"]
    job, _, _ = poll_until_final(stack, accepted, deadline=t0 + SEARCH_TIMEOUT)
    latency_ms = (time.perf_counter() - t0) * 1000
    if job is None or job["status"] != JobStatus.SUCCEEDED:
        return {"error": f"job {job_id} {job['status'] if job else 'not final'}: {job and job['error']}"}
    result = job["result"]
    return {"latency_ms": latency_ms, "took_ms": result["took_ms"], "cached": bool(result.get("cached")),
            "texts": [hit["text"] for hit in result["hits"]], "scores": [hit["score"] for hit in result["hits"]]}


def warm_up(stack: Stack, name: str, queries: list[str]) -> None:
    """Untimed searches POSTed at once, so every worker child loads the
    collection's indexes and document map before the timed searches."""
    kinds = itertools.cycle([(pipeline, filters) for _, pipeline, _, filters in RUNS])
    posted = [stack.post(f"/api/v1/collections/{name}/search", json=search_body(query, *kind))
              for query, kind in zip(queries, kinds)]
    for response in posted:
        assert response.status_code == 202, response.text
        job = stack.wait_job(response.json()["id"], timeout=600)
        if job["status"] != JobStatus.SUCCEEDED:
            raise RuntimeError(f"warm-up search {job['id']} on {name} ended {job['status']}: {job['error']}")


def run_searches(stack: Stack, queries: dict[str, list[str]]) -> dict:
    """Each run's searches one at a time, every query against flat then hnsw
    (interleaved, so load from outside the run falls on both alike)."""
    out = {}
    for label, pipeline, _, filters in RUNS:
        raw: dict[str, list[dict]] = {kind: [] for kind in KINDS}
        for query in queries[label]:
            for kind in KINDS:
                raw[kind].append(timed_search(stack, f"scale-{kind}", search_body(query, pipeline, filters)))
        out[label] = {kind: summarize(results) for kind, results in raw.items()}
        if pipeline == "dense":
            out[label]["recall"] = recall_at_k(raw["hnsw"], raw["flat"])
        log(f"{label}: " + "; ".join(f"{kind} took_ms p50 {fmt(out[label][kind]['took'].get('p50'))}, failed "
                                     f"{out[label][kind]['failed']}" for kind in KINDS))
    return out


def summarize(results: list[dict]) -> dict:
    ok = [r for r in results if "error" not in r]
    full = [r["scores"] for r in ok if len(r["scores"]) == TOP_K]
    return {"took": latency_stats([r["took_ms"] for r in ok]), "latency": latency_stats([r["latency_ms"] for r in ok]),
            "failed": len(results) - len(ok), "errors": [r["error"] for r in results if "error" in r][:5],
            "cached": sum(r["cached"] for r in ok),
            # Mean score of the 1st and the last hit: how far the top stands out from the rest.
            "first_last": (float(np.mean([x[0] for x in full])), float(np.mean([x[-1] for x in full]))) if full else None}


def recall_at_k(approximate: list[dict], exact: list[dict]) -> float | None:
    """Mean share of the exact top k that the approximate search returned,
    matched by chunk text (random, so unique; chunk ids differ between the collections)."""
    shares = [len(set(a["texts"]) & set(e["texts"])) / len(e["texts"])
              for a, e in zip(approximate, exact) if "error" not in a and "error" not in e and e["texts"]]
    return float(np.mean(shares)) if shares else None


def worker_memory(pgid: int) -> dict:
    """PSS (pages shared after fork counted in part) and RSS of the worker's process group, in MB."""
    pids = group_pids(pgid)
    return {"processes": len(pids), "pss_mb": sum(pss_kb(pid) for pid in pids) / 1024,
            "rss_mb": sum(memory_kb(pid).get("VmRSS", 0) for pid in pids) / 1024}


def prepare(stack: Stack, chunks: int, words: np.ndarray) -> dict:
    """Both collections made over HTTP, filled with rows, indexed with the CLI."""
    for kind, index_type in COLLECTIONS.items():
        response = stack.post("/api/v1/collections", json={"name": f"scale-{kind}", "index_type": index_type})
        assert response.status_code == 201, response.text
    engine = sa.create_engine(stack.env["DATABASE_URL"], connect_args={"timeout": 60})
    with Session(engine) as session:  # the CLI takes the tenant's name; the key's tenant owns both
        tenant = session.scalars(select(Tenant.name).join(Collection, Collection.tenant_id == Tenant.id)).first()
    out = {"write_s": {kind: fill_collection(engine, f"scale-{kind}", chunks, words) for kind in KINDS}}
    engine.dispose()
    log(f"rows written directly: {out['write_s']}")
    out["rebuild"] = {kind: rebuild_index(stack, f"scale-{kind}", tenant) for kind in COLLECTIONS}
    log(f"index rebuild: {out['rebuild']}")
    out["collections"] = {kind: stack.get(f"/api/v1/collections/scale-{kind}").json() for kind in KINDS}
    return out


def measure(workdir: Path, chunks: int) -> dict:
    words, rng = vocabulary(), np.random.default_rng(SEED + 1)
    queries = {label: [" ".join(rng.choice(words, QUERY_WORDS)) for _ in range(n)] for label, _, n, _ in RUNS}
    with private_service(workdir) as (stack, _key):
        stack.start_web()
        worker = stack.start_worker(concurrency=WORKER_CONCURRENCY)
        out = prepare(stack, chunks, words)
        out["memory_before"] = worker_memory(worker.pid)
        for kind in KINDS:
            warm_up(stack, f"scale-{kind}", [" ".join(rng.choice(words, QUERY_WORDS)) for _ in range(WARMUP)])
        meter = CpuMeter({"web": stack.processes[0].pid, "worker": worker.pid}, redis_pid=stack.redis.process.pid)
        out["searches"] = run_searches(stack, queries)
        meter.phase("searches")
        out.update(cpu=meter.phases["searches"], memory_after=worker_memory(worker.pid),
                   log_findings=log_findings(stack.workdir))
    return out


def render(results: dict) -> str:
    return "\n".join([SECTION, "", *setup_lines(results), *result_lines(results), "", interpret(results), "", ""])


def setup_lines(results: dict) -> list[str]:
    m, cpu, n, hnsw = results["machine"], results["cpu"], results["chunks"], results["hnsw"]
    counts = ", ".join(f"`scale-{k}` {c['documents']:,} documents / {c['chunks']:,} chunks"
                       for k, c in results["collections"].items())
    return [
        f"Produced by `make bench-scale` (`.venv/bin/python bench/scale_service.py --chunks {n}`); one run.", "",
        f"- Date: {results['date']} (run took {results['total_s'] / 60:.1f} min); code: {code_words(m)}",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']:.1f} GB RAM; load average at start "
        f"{' '.join(m['loadavg_at_start'])}; cores busy during the timed searches: worker "
        f"{fmt(cpu['worker_cores'], 2)}, web {fmt(cpu['web_cores'], 2)}, this client {fmt(cpu['driver_cores'], 2)}, "
        f"other processes {fmt(cpu['other_cores'], 2)}",
        f"- Data: {counts} (`GET /api/v1/collections/{{name}}`), the same rows in both: {CHUNKS_PER_DOC} chunks "
        f"per document, each {WORDS_PER_CHUNK} random words from a fixed list of {VOCABULARY} made-up words, its "
        f"embedding a random unit vector ({DIM}-d float32, seeded); document metadata `{{\"group\": i % {GROUPS}}}`",
        f"- **Rows written directly**, not through the ingest pipeline: SQLAlchemy bulk INSERTs ({BATCH:,} chunks "
        "per batch) into the service's SQLite database, "
        + " and ".join(f"{fmt(results['write_s'][k])} s for {k}" for k in KINDS)
        + f". Ingest embeds about 40 chunks/s on this machine ({n:,} chunks: about {n / 40 / 60:.0f} min per "
        "collection), and this benchmark measures search",
        "- Collections made with `POST /api/v1/collections` (`index_type` flat / hnsw); indexes built with the "
        f"operator's command `flask --app wsgi index rebuild NAME --tenant TENANT`; hnsw M {hnsw[0]}, "
        f"efConstruction {hnsw[1]}, efSearch {hnsw[2]}",
        f"- Service: private redis-server, SQLite, gunicorn 1 process × 4 threads, one Celery worker with "
        f"concurrency {WORKER_CONCURRENCY}. Searches: {WARMUP} untimed warm-up searches per collection POSTed "
        f"at once (each worker child loads the indexes), then the table's, one at a time, each query against "
        f"flat then hnsw; `top_k` {TOP_K}; query = {QUERY_WORDS} random words from the list; the client polls "
        f"`GET /api/v1/jobs/{{id}}` as its `poll_after_ms` says (at least {SEARCH_POLL_INTERVAL * 1000:.0f} ms apart); client latency = POST until the "
        "poll that saw `succeeded`",
    ]


def result_lines(results: dict) -> list[str]:
    searches, rebuild, before, after = (results[k] for k in ("searches", "rebuild", "memory_before", "memory_after"))
    recalls = "; ".join(f"{label} {fmt(searches[label]['recall'], 3)}" for label, *_ in RUNS
                        if "recall" in searches[label])
    lines = [
        f"- Index build, `index rebuild` wall time (reads the rows, builds the vector and the BM25 index, writes "
        f"both): flat {fmt(rebuild['flat'])} s, hnsw {fmt(rebuild['hnsw'])} s; the same command on an empty "
        f"collection (process start, imports, model load) {fmt(rebuild['empty'])} s",
        f"- Recall@10 of hnsw against flat (share of flat's top {TOP_K} that hnsw returned for the same query, "
        f"matched by chunk text): {recalls}. Mean score of the 1st / {TOP_K}th `dense` hit: "
        + ", ".join(f"{k} {first_last(searches['dense'][k])}" for k in KINDS),
        f"- Worker memory, PSS summed over its {after['processes']} processes: {fmt(before['pss_mb'], 0)} MB "
        f"before the first search (model loaded in each child), {fmt(after['pss_mb'], 0)} MB after the searches "
        f"(RSS sum {fmt(after['rss_mb'], 0)} MB); tracebacks in the service logs: "
        f"{sum(f['tracebacks'] for f in results['log_findings'].values())}; timed searches answered from the search "
        f"cache: {sum(searches[label][k]['cached'] for label, *_ in RUNS for k in KINDS)}", "",
        "| Pipeline (searches per collection) | Index | `took_ms` p50 | `took_ms` p95 | Client p50 (ms) | "
        "Client p95 (ms) | Failed |",
        "|---|---|---|---|---|---|---|",
    ]
    for label, _, count, _ in RUNS:
        for kind, s in ((kind, searches[label][kind]) for kind in KINDS):
            lines.append(f"| {label} ({count}) | {kind} | {fmt(s['took'].get('p50'))} | {fmt(s['took'].get('p95'))} "
                         f"| {fmt(s['latency'].get('p50'))} | {fmt(s['latency'].get('p95'))} | {s['failed']} |")
    return lines


def first_last(summary: dict) -> str:
    return " / ".join(fmt(x, 3) for x in summary["first_last"]) if summary["first_last"] else "n/a"


def interpret(results: dict) -> str:
    """What this run measured, in words; no more."""
    s, rebuild = results["searches"], results["rebuild"]
    dense, hybrid, filtered = (label for label, *_ in RUNS)

    def p50(label: str, key: str = "took") -> str:
        return " and ".join(fmt(s[label][kind][key].get("p50")) for kind in KINDS)

    text = (
        f"With `dense`, `took_ms` p50 was {p50(dense)} ms (flat and hnsw) and the client saw p50 "
        f"{p50(dense, 'latency')} ms; with `hybrid` `took_ms` p50 was {p50(hybrid)} ms, with the group filter "
        f"{p50(filtered)} ms. hnsw returned {fmt(100 * (s[dense]['recall'] or 0))}% of flat's top {TOP_K} "
        f"({fmt(100 * (s[filtered]['recall'] or 0))}% with the filter) on these random vectors, whose exact "
        f"1st and {TOP_K}th hits scored {first_last(s[dense]['flat'])} on average; its `index rebuild` took "
        f"{fmt(rebuild['hnsw'])} s against {fmt(rebuild['flat'])} s for flat."
    )
    return text + (f" {failed} searches did not succeed." if (failed := failures(s)) else "")


def failures(searches: dict) -> int:
    return sum(searches[label][kind]["failed"] for label, *_ in RUNS for kind in KINDS)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--chunks", type=int, default=200_000, help="chunks per collection (a multiple of 4)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file; its section is replaced")
    args = parser.parse_args()
    if args.chunks < CHUNKS_PER_DOC or args.chunks % CHUNKS_PER_DOC:
        parser.error(f"--chunks must be a positive multiple of {CHUNKS_PER_DOC}")
    # Keep a developer's local service (and a test database) out of the run.
    for name in ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL", "TEST_DATABASE_URL"):
        os.environ.pop(name, None)
    started, machine = time.time(), machine_info()
    workdir = Path(tempfile.mkdtemp(prefix="quarry-bench-scale-"))
    try:
        results = measure(workdir, args.chunks)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    results.update(date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"), total_s=time.time() - started,
                   machine=machine, chunks=args.chunks,
                   hnsw=(settings.hnsw_m, settings.hnsw_ef_construction, settings.hnsw_ef_search))
    section = render(results)
    write_section(args.output, SECTION, section)
    print(section, end="")
    for label, kind in itertools.product([r[0] for r in RUNS], KINDS):
        print("".join(f"ERROR {label} {kind}: {error}\n" for error in results["searches"][label][kind]["errors"]), end="")
    print(f"wrote {args.output}")
    return 1 if failures(results["searches"]) else 0


if __name__ == "__main__":
    sys.exit(main())
