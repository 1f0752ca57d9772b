#!/usr/bin/env python
"""Quarry benchmark on SciFact (BEIR): the service end to end vs. the same
search core in one process.

    .venv/bin/python bench/run.py                      # full run, writes docs/benchmarks.md
    .venv/bin/python bench/run.py --docs 200 --queries 20 --output /tmp/bench.md   # quick

One run does, in order:
  1. service: private Redis + SQLite + gunicorn web + ONE Celery worker
     (concurrency 2); ingest the corpus over HTTP, run every query as a search
     job sequentially (client polls every 20 ms), then from 8 client threads;
  2. tears the service down;
  3. baseline: a fresh Python process (bench/run.py --baseline) that chunks,
     embeds and indexes the same corpus with app.search.* and runs the same
     queries one at a time;
  4. scores both (nDCG@10, Recall@10 by document) and writes the report.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import math
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DEFAULT_DATASET = ROOT.parent / "shared" / "datasets" / "scifact"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"
COLLECTION = "scifact"
TOP_K = 10
POLL_INTERVAL = 0.020  # seconds between GET /jobs/{id} while a search runs
INGEST_BATCH = 500
INGEST_POLL_INTERVAL = 1.0  # seconds between polls of the pending ingest jobs
CLIENT_THREADS = 8
WORKER_CONCURRENCY = 2
WARMUP_QUERIES = 6  # not timed: they load the index into each worker child
PUBLISHED_NDCG = 0.645  # all-MiniLM-L6-v2 on BEIR SciFact (MTEB / SBERT tables)
TERMINAL = {"succeeded", "failed", "cancelled"}


# --- dataset -------------------------------------------------------------------


def load_dataset(path: Path, n_docs: int | None, n_queries: int | None):
    """(docs, queries, qrels): docs [{_id,title,text}], queries [(qid, text)]
    of the test queries that have qrels, qrels {qid: {docid: score}}."""
    corpus = [json.loads(line) for line in (path / "corpus.jsonl").open(encoding="utf-8") if line.strip()]
    all_queries = {}
    for line in (path / "queries.jsonl").open(encoding="utf-8"):
        if line.strip():
            q = json.loads(line)
            all_queries[str(q["_id"])] = q["text"]
    qrels: dict[str, dict[str, int]] = {}
    with (path / "qrels" / "test.tsv").open(encoding="utf-8") as f:
        header = f.readline().split("\t")
        assert header[0].strip() == "query-id", header
        for line in f:
            if not line.strip():
                continue
            qid, did, score = line.rstrip("\n").split("\t")
            qrels.setdefault(qid.strip(), {})[did.strip()] = int(score)
    queries = [(qid, text) for qid, text in all_queries.items() if qid in qrels]
    if n_queries is not None:
        queries = queries[:n_queries]
    qrels = {qid: qrels[qid] for qid, _ in queries}
    if n_docs is not None and n_docs < len(corpus):
        # A subset for quick runs: the judged documents of the chosen queries
        # first, so the quality numbers still mean something, then filler.
        wanted = {d for rels in qrels.values() for d in rels}
        first = [d for d in corpus if str(d["_id"]) in wanted]
        rest = [d for d in corpus if str(d["_id"]) not in wanted]
        corpus = (first + rest)[: max(n_docs, 0)]
    return corpus, queries, qrels


def doc_text(doc: dict) -> str:
    title, text = (doc.get("title") or "").strip(), (doc.get("text") or "").strip()
    return f"{title}. {text}" if title and text else (title or text)


# --- metrics -------------------------------------------------------------------


def dedupe(doc_ids):
    """Document ranking from a chunk ranking: a document takes the rank of its
    best chunk."""
    seen, out = set(), []
    for d in doc_ids:
        if d not in seen:
            seen.add(d)
            out.append(d)
    return out


def ndcg_recall(ranked: list[str], rels: dict[str, int], k: int = 10) -> tuple[float, float]:
    ranked = ranked[:k]
    dcg = sum(rels.get(d, 0) / math.log2(i + 2) for i, d in enumerate(ranked))
    ideal = sorted((s for s in rels.values() if s > 0), reverse=True)[:k]
    idcg = sum(s / math.log2(i + 2) for i, s in enumerate(ideal))
    positives = {d for d, s in rels.items() if s > 0}
    recall = len(positives & set(ranked)) / len(positives) if positives else 0.0
    return (dcg / idcg if idcg else 0.0), recall


def quality(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict:
    scores = [ndcg_recall(rankings.get(qid, []), rels, TOP_K) for qid, rels in qrels.items()]
    n = len(scores)
    return {
        "queries": n,
        "ndcg@10": sum(s[0] for s in scores) / n if n else float("nan"),
        "recall@10": sum(s[1] for s in scores) / n if n else float("nan"),
    }


def stats(values_ms: list[float]) -> dict:
    import numpy as np

    if not values_ms:
        return {"n": 0}
    a = np.asarray(values_ms, dtype=float)
    return {
        "n": int(a.size),
        "mean": float(a.mean()),
        "p50": float(np.percentile(a, 50)),
        "p95": float(np.percentile(a, 95)),
        "p99": float(np.percentile(a, 99)),
        "min": float(a.min()),
        "max": float(a.max()),
    }


# --- memory (from /proc, no psutil) -----------------------------------------------


def proc_status(pid: int) -> dict[str, int]:
    """VmRSS / VmHWM in kB for one process ({} if it is gone)."""
    out = {}
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(value.split()[0])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return {}
    return out


def proc_pss(pid: int) -> int | None:
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith("Pss:"):
                return int(line.split()[1])
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        pass
    return None


def group_pids(pgid: int) -> list[int]:
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        if int(fields[2]) == pgid:  # state, ppid, pgrp, ...
            pids.append(int(entry.name))
    return pids


def group_cpu_seconds(pgid: int, pids: list[int] | None = None) -> float:
    """utime + stime of the live processes of a process group (plus what their
    reaped children used), in core-seconds."""
    total = 0
    for pid in group_pids(pgid) if pids is None else pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
        except (FileNotFoundError, ProcessLookupError, PermissionError):
            continue
        fields = stat[stat.rfind(")") + 2 :].split()
        total += sum(int(x) for x in fields[11:15])  # utime stime cutime cstime
    return total / os.sysconf("SC_CLK_TCK")


class CpuMeter:
    """Who used the CPU in each phase: the web and worker process groups,
    redis, this driver (the HTTP clients), everything else."""

    def __init__(self, groups: dict[str, int]) -> None:
        self.groups = groups
        self.phases: dict[str, dict] = {}
        self._mark = self._read()

    def _read(self) -> dict:
        values = {name: group_cpu_seconds(pgid) for name, pgid in self.groups.items() if name != "redis"}
        if "redis" in self.groups:  # not a group of its own: just the one process
            values["redis"] = group_cpu_seconds(0, [self.groups["redis"]])
        t = os.times()
        values["driver"] = t.user + t.system  # threads included; children are counted in their groups
        values["machine"] = cpu_busy_seconds()
        values["wall"] = time.perf_counter()
        return values

    def phase(self, name: str) -> None:
        now = self._read()
        delta = {k: now[k] - self._mark[k] for k in now}
        wall = delta.pop("wall")
        machine = delta.pop("machine")
        ours = sum(delta.values())
        cores = len(os.sched_getaffinity(0))
        self.phases[name] = {
            "wall_s": wall,
            **{f"{k}_cores": v / wall for k, v in delta.items()},
            "other_cores": max(0.0, machine - ours) / wall,
            "idle_cores": max(0.0, cores - machine / wall),
        }
        self._mark = now


class MemorySampler:
    """Samples the RSS of whole process groups once a second; keeps, per group,
    each process's high-water mark (VmHWM) and the highest sampled sum of RSS
    and of PSS (PSS splits pages shared after fork, so its sum does not
    double-count)."""

    def __init__(self, groups: dict[str, int], interval: float = 1.0) -> None:
        self.groups = groups
        self.interval = interval
        self.hwm: dict[str, dict[int, int]] = {name: {} for name in groups}
        self.peak_rss_sum = {name: 0 for name in groups}
        self.peak_pss_sum = {name: 0 for name in groups}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def start(self) -> "MemorySampler":
        self._thread.start()
        return self

    def sample(self) -> None:
        for name, pgid in self.groups.items():
            rss_sum = pss_sum = 0
            for pid in group_pids(pgid):
                st = proc_status(pid)
                if not st:
                    continue
                self.hwm[name][pid] = max(self.hwm[name].get(pid, 0), st.get("VmHWM", 0))
                rss_sum += st.get("VmRSS", 0)
                pss_sum += proc_pss(pid) or 0
            self.peak_rss_sum[name] = max(self.peak_rss_sum[name], rss_sum)
            self.peak_pss_sum[name] = max(self.peak_pss_sum[name], pss_sum)

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def stop(self) -> dict:
        self.sample()
        self._stop.set()
        self._thread.join(5)
        return {
            name: {
                "processes": len(self.hwm[name]),
                "per_process_hwm_mb": sorted((v / 1024 for v in self.hwm[name].values()), reverse=True),
                "sum_hwm_mb": sum(self.hwm[name].values()) / 1024,
                "peak_rss_sum_mb": self.peak_rss_sum[name] / 1024,
                "peak_pss_sum_mb": self.peak_pss_sum[name] / 1024,
            }
            for name in self.groups
        }


# --- service path -------------------------------------------------------------------


def parse_ts(value: str | None) -> float | None:
    if not value:
        return None
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def search_once(http, base_url: str, query: str) -> dict:
    """POST a search job, poll until final. Times as the client sees them."""
    import time as _t

    wall0 = _t.time()
    t0 = _t.perf_counter()
    response = http.post(
        f"{base_url}/api/v1/collections/{COLLECTION}/search",
        json={"query": query, "top_k": TOP_K, "pipeline": "dense"},
        timeout=60,
    )
    t_posted = _t.perf_counter()
    if response.status_code != 202:
        return {"error": f"POST {response.status_code}: {response.text[:300]}", "latency_ms": None}
    job_id = response.json()["id"]
    polls = 0
    deadline = t0 + 120
    bad_polls = 0
    while True:
        _t.sleep(POLL_INTERVAL)
        reply = http.get(f"{base_url}/api/v1/jobs/{job_id}", timeout=30)
        polls += 1
        if reply.status_code == 200:
            job = reply.json()
            if job["status"] in TERMINAL:
                break
        else:
            bad_polls += 1
            job = {"status": f"HTTP {reply.status_code}", "body": reply.text[:300]}
        if _t.perf_counter() > deadline:
            return {"error": f"job {job_id} not final after 120 s", "latency_ms": None, "job": job}
    t_done = _t.perf_counter()
    out = {
        "job_id": job_id,
        "status": job["status"],
        "attempts": job.get("attempts"),
        "latency_ms": (t_done - t0) * 1000,
        "post_ms": (t_posted - t0) * 1000,
        "polls": polls,
        "bad_polls": bad_polls,
    }
    if job["status"] != "succeeded":
        out["error"] = f"job {job_id} {job['status']}: {job.get('error')}"
        return out
    result = job["result"] or {}
    out["took_ms"] = result.get("took_ms")
    out["doc_ids"] = [h["document_id"] for h in result.get("hits", [])]
    # Where the time went, on the machine's one clock (wall time).
    created, started, finished = (parse_ts(job.get(k)) for k in ("created_at", "started_at", "finished_at"))
    seen_wall = wall0 + (t_done - t0)
    if created and started and finished:
        out["phases_ms"] = {
            "post_to_row": (created - wall0) * 1000,  # request parse, tenant lookup, until the row's timestamp
            "queue": (started - created) * 1000,  # commit, enqueue, Redis, Celery delivery, claim
            "run": (finished - started) * 1000,  # claim -> result row (handler + DB writes)
            "notice": (seen_wall - finished) * 1000,  # until the client's poll saw it
        }
    return out


class StackDied(RuntimeError):
    """A service process exited while the benchmark was using it."""


def check_alive(stack) -> None:
    for process in stack.processes:
        code = process.poll()
        if code is not None:
            raise StackDied(
                f"service process {process.pid} ({' '.join(map(str, process.args[:3]))} ...) "
                f"exited with {code} at {dt.datetime.now().strftime('%H:%M:%S')} without being asked to"
            )


BENCH_TIER = "enterprise"
BENCH_LIMITS = {"RATE_LIMIT_ENTERPRISE": "1000000/minute", "INFLIGHT_JOBS_ENTERPRISE": "100000"}


def make_api_key(database_url: str) -> str | None:
    """An API key for the benchmark's tenant, made directly in the database,
    when this version of the service has API keys; None when it has none."""
    try:
        from app.services import keys
    except ImportError:
        return None
    from sqlalchemy import create_engine
    from sqlalchemy.orm import Session

    engine = create_engine(database_url)
    try:
        with Session(engine) as session:
            tenant = keys.ensure_tenant(session, "bench")
            _, plaintext = keys.create_key(
                session, tenant.id, name="bench", scopes=["read", "write"], tier=BENCH_TIER
            )
            return plaintext
    finally:
        engine.dispose()


def run_service(args, docs, queries, workdir: Path, log) -> dict:
    import requests

    from tests.support import RedisServer, Stack, create_database

    out: dict = {"errors": []}
    redis = RedisServer(workdir / "redis").start()
    db_url, drop = create_database(workdir / "db")
    stackdir = workdir / "stack"
    stackdir.mkdir(parents=True, exist_ok=True)
    stack = Stack(
        stackdir, db_url, redis,
        # When the API rate-limits keys by tier, the benchmark's key must not
        # be the bottleneck: measure the service, not the limit.
        **BENCH_LIMITS,
    )
    if hasattr(stack, "create_key"):  # the service has API keys: make one the operator's way (CLI)
        api_key = stack.create_key("bench", scopes="read,write", tier=BENCH_TIER, name="bench")
    else:
        api_key = make_api_key(db_url)
    out["api_key"] = bool(api_key)
    auth_headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
    stack.http.headers.update(auth_headers)

    def new_session():
        http = requests.Session()
        http.headers.update(auth_headers)
        return http
    sampler = None
    try:
        t = time.perf_counter()
        stack.start_web()
        worker = stack.start_worker(concurrency=WORKER_CONCURRENCY)
        out["startup_s"] = time.perf_counter() - t
        web = stack.processes[0]
        sampler = MemorySampler({"worker": worker.pid, "web": web.pid}).start()
        log(f"service up in {out['startup_s']:.1f} s (web pid {web.pid}, worker pgid {worker.pid})")

        # --- warm-up: the worker logs "ready" before its pool children have
        # loaded the model; two tiny ingest jobs (one per child) wait for that
        # so the measured ingest starts with a warm worker.
        t = time.perf_counter()
        warm_jobs = []
        for n in range(WORKER_CONCURRENCY):
            r = stack.post(
                "/api/v1/collections/warmup/documents",
                json={"documents": [{"id": f"w{n}", "text": f"warm-up document number {n}"}]},
            )
            if r.status_code != 202:
                raise RuntimeError(f"warm-up ingest POST answered {r.status_code}: {r.text[:500]}")
            warm_jobs.append(r.json()["id"])
        for jid in warm_jobs:
            job = stack.wait_job(jid, timeout=300)
            if job["status"] != "succeeded":
                raise RuntimeError(f"warm-up ingest job {jid} ended {job['status']}: {job.get('error')}")
        out["warmup_ingest_s"] = time.perf_counter() - t
        log(f"worker warm (model loaded in its children) {out['warmup_ingest_s']:.1f} s after 'ready'")

        meter = CpuMeter({"web": web.pid, "worker": worker.pid, "redis": redis.process.pid})

        # --- ingest ---
        payloads = [
            [{"id": str(d["_id"]), "text": doc_text(d), "metadata": {"title": d.get("title") or ""}}
             for d in docs[i : i + INGEST_BATCH]]
            for i in range(0, len(docs), INGEST_BATCH)
        ]
        t0 = time.perf_counter()
        job_ids = []
        for batch in payloads:
            check_alive(stack)
            r = stack.post(f"/api/v1/collections/{COLLECTION}/documents", json={"documents": batch})
            if r.status_code != 202:
                raise RuntimeError(f"ingest POST answered {r.status_code}: {r.text[:500]}")
            job_ids.append(r.json()["id"])
        submit_s = time.perf_counter() - t0
        pending, jobs_done = set(job_ids), {}
        deadline = time.monotonic() + args.ingest_timeout
        while pending:
            for jid in list(pending):
                job = stack.get(f"/api/v1/jobs/{jid}").json()
                if job["status"] in TERMINAL:
                    jobs_done[jid] = job
                    pending.discard(jid)
            if pending:
                check_alive(stack)
                if time.monotonic() > deadline:
                    raise RuntimeError(f"ingest not finished after {args.ingest_timeout} s: {sorted(pending)}")
                # Once a second (the API's Retry-After says 2 s for ingest jobs):
                # faster polling would take CPU from the ingest it measures.
                time.sleep(INGEST_POLL_INTERVAL)
        ingest_wall = time.perf_counter() - t0
        ingest_jobs = [jobs_done[j] for j in job_ids]
        res = [j.get("result") or {} for j in ingest_jobs]
        n_docs = sum(r.get("documents", 0) for r in res)
        n_chunks = sum(r.get("chunks", 0) for r in res)
        job_secs = [
            parse_ts(j["finished_at"]) - parse_ts(j["started_at"])
            for j in ingest_jobs if j.get("started_at") and j.get("finished_at")
        ]
        server_wall = None
        if all(j.get("finished_at") for j in ingest_jobs):
            server_wall = max(parse_ts(j["finished_at"]) for j in ingest_jobs) - min(
                parse_ts(j["created_at"]) for j in ingest_jobs
            )
        out["ingest"] = {
            "requests": len(payloads),
            "batch": INGEST_BATCH,
            "submit_s": submit_s,
            "wall_s": ingest_wall,
            "server_wall_s": server_wall,
            "documents": n_docs,
            "chunks": n_chunks,
            "skipped_duplicates": sum(r.get("skipped_duplicates", 0) for r in res),
            "failed_documents": [f for r in res for f in r.get("failed", [])],
            "statuses": [j["status"] for j in ingest_jobs],
            "attempts": [j.get("attempts") for j in ingest_jobs],
            "errors": [j.get("error") for j in ingest_jobs if j.get("error")],
            "job_seconds": job_secs,
            "docs_per_s": n_docs / ingest_wall if ingest_wall else 0,
            "chunks_per_s": n_chunks / ingest_wall if ingest_wall else 0,
        }
        log(
            f"ingest: {n_docs} docs, {n_chunks} chunks in {ingest_wall:.1f} s "
            f"({n_docs / ingest_wall:.1f} docs/s, {n_chunks / ingest_wall:.1f} chunks/s); "
            f"statuses {sorted(set(out['ingest']['statuses']))}"
        )
        check_alive(stack)
        coll = stack.get(f"/api/v1/collections/{COLLECTION}").json()
        out["collection"] = coll

        meter.phase("ingest")

        # --- warm-up: every worker child loads the index once ---
        for _, text in queries[:WARMUP_QUERIES]:
            search_once(stack.http, stack.base_url, text)
        warm = []
        threads = [
            threading.Thread(target=lambda q=q: warm.append(search_once(new_session(), stack.base_url, q)))
            for _, q in queries[:2]
        ]
        for th in threads:
            th.start()
        for th in threads:
            th.join()

        meter.phase("warm-up")

        # --- sequential searches ---
        t0 = time.perf_counter()
        seq = []
        for i, (qid, text) in enumerate(queries):
            try:
                r = search_once(stack.http, stack.base_url, text)
            except Exception:
                check_alive(stack)
                raise
            r["qid"] = qid
            seq.append(r)
            if r.get("error"):
                out["errors"].append(r["error"])
            if (i + 1) % 50 == 0:
                log(f"  sequential: {i + 1}/{len(queries)}")
        seq_wall = time.perf_counter() - t0
        ok = [r for r in seq if r.get("status") == "succeeded"]
        out["sequential"] = {
            "wall_s": seq_wall,
            "qps": len(ok) / seq_wall if seq_wall else 0,
            "latency": stats([r["latency_ms"] for r in ok]),
            "took": stats([r["took_ms"] for r in ok if r.get("took_ms") is not None]),
            "post": stats([r["post_ms"] for r in ok]),
            "polls_mean": sum(r["polls"] for r in ok) / len(ok) if ok else 0,
            "phases": {
                k: stats([r["phases_ms"][k] for r in ok if "phases_ms" in r])
                for k in ("post_to_row", "queue", "run", "notice")
            },
            "failed": len(seq) - len(ok),
            "bad_polls": sum(r.get("bad_polls", 0) for r in seq),
            "retried": sum(1 for r in ok if (r.get("attempts") or 1) > 1),
        }
        out["rankings"] = {r["qid"]: dedupe(r.get("doc_ids", [])) for r in seq}
        s = out["sequential"]
        log(
            f"sequential: {len(ok)}/{len(seq)} ok, p50 {s['latency']['p50']:.1f} ms, "
            f"p95 {s['latency']['p95']:.1f} ms, took_ms p50 {s['took']['p50']:.1f}, {s['qps']:.2f} q/s"
        )

        meter.phase("sequential")

        # --- concurrent searches: CLIENT_THREADS closed-loop clients ---
        lock = threading.Lock()
        cursor = iter(list(enumerate(queries)))
        conc: list[dict] = []

        def client() -> None:
            http = new_session()
            while True:
                with lock:
                    item = next(cursor, None)
                if item is None:
                    return
                _, (qid, text) = item
                try:
                    r = search_once(http, stack.base_url, text)
                except Exception as exc:  # noqa: BLE001 - reported, not raised
                    r = {"error": f"{type(exc).__name__}: {exc}", "latency_ms": None}
                r["qid"] = qid
                with lock:
                    conc.append(r)

        t0 = time.perf_counter()
        threads = [threading.Thread(target=client) for _ in range(CLIENT_THREADS)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
        conc_wall = time.perf_counter() - t0
        check_alive(stack)
        meter.phase("concurrent")
        out["cpu_by_phase"] = meter.phases
        ok = [r for r in conc if r.get("status") == "succeeded"]
        for r in conc:
            if r.get("error"):
                out["errors"].append(r["error"])
        out["concurrent"] = {
            "clients": CLIENT_THREADS,
            "wall_s": conc_wall,
            "qps": len(ok) / conc_wall if conc_wall else 0,
            "latency": stats([r["latency_ms"] for r in ok]),
            "took": stats([r["took_ms"] for r in ok if r.get("took_ms") is not None]),
            "phases": {
                k: stats([r["phases_ms"][k] for r in ok if "phases_ms" in r])
                for k in ("post_to_row", "queue", "run", "notice")
            },
            "failed": len(conc) - len(ok),
            "bad_polls": sum(r.get("bad_polls", 0) for r in conc),
            "retried": sum(1 for r in ok if (r.get("attempts") or 1) > 1),
        }
        conc_rank = {r["qid"]: dedupe(r.get("doc_ids", [])) for r in conc}
        out["concurrent"]["same_rankings_as_sequential"] = sum(
            1 for qid, ranked in conc_rank.items() if ranked == out["rankings"].get(qid)
        )
        c = out["concurrent"]
        log(
            f"concurrent x{CLIENT_THREADS}: {len(ok)}/{len(conc)} ok, {c['qps']:.2f} q/s, "
            f"p50 {c['latency']['p50']:.1f} ms, p95 {c['latency']['p95']:.1f} ms"
        )
    except StackDied:
        raise
    except Exception:
        check_alive(stack)  # a dead process explains the failure: say so
        raise
    finally:
        if sampler is not None:
            out["memory"] = sampler.stop()
        stack.stop()
        redis.stop()
        drop()
    # What the logs say went wrong, if anything.
    out["log_findings"] = {}
    for logfile in sorted(stackdir.glob("*.log")):
        text = logfile.read_text(errors="replace")
        out["log_findings"][logfile.name] = {
            "tracebacks": text.count("Traceback (most recent call last)"),
            "errors": sum(1 for line in text.splitlines() if " ERROR " in line or "] ERROR" in line),
            "warnings": sum(1 for line in text.splitlines() if " WARNING " in line or "] WARNING" in line),
            "database_locked": text.count("database is locked"),
            "first_error_lines": [
                line[:300] for line in text.splitlines()
                if "Traceback" in line or " ERROR " in line or "] ERROR" in line
            ][:5],
        }
    return out


# --- in-process baseline (runs in its own process: `run.py --baseline OUT`) ---------------


def run_baseline(args) -> None:
    import numpy as np
    import torch

    from app.config import settings
    from app.search.chunking import chunk_text
    from app.search.embedding import Embedder
    from app.search.index_store import VectorIndex

    docs, queries, qrels = load_dataset(args.dataset, args.docs, args.queries)
    out: dict = {"torch_threads": torch.get_num_threads()}
    t = time.perf_counter()
    embedder = Embedder("all-MiniLM-L6-v2", settings.embed_batch_size)
    out["model_load_s"] = time.perf_counter() - t
    out["rss_after_model_mb"] = proc_status(os.getpid()).get("VmRSS", 0) / 1024

    t_all = time.perf_counter()
    texts, owners = [], []
    for d in docs:
        for piece in chunk_text(doc_text(d), embedder.tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens):
            texts.append(piece.text)
            owners.append(str(d["_id"]))
    chunk_s = time.perf_counter() - t_all
    t = time.perf_counter()
    vectors = embedder.encode(texts)
    embed_s = time.perf_counter() - t
    t = time.perf_counter()
    index = VectorIndex(embedder.dimension)
    index.add(np.arange(len(texts), dtype="int64"), vectors)
    index_s = time.perf_counter() - t
    total_s = time.perf_counter() - t_all
    out["ingest"] = {
        "documents": len(docs),
        "chunks": len(texts),
        "chunk_s": chunk_s,
        "embed_s": embed_s,
        "index_s": index_s,
        "total_s": total_s,
        "embed_chunks_per_s": len(texts) / embed_s if embed_s else 0,
        "docs_per_s": len(docs) / total_s if total_s else 0,
        "chunks_per_s": len(texts) / total_s if total_s else 0,
    }

    def one(text: str) -> list[str]:
        hits = index.search(embedder.encode([text]), TOP_K)[0]
        return dedupe([owners[i] for i, _ in hits])

    one(queries[0][1])  # warm-up
    rankings, lat = {}, []
    t_seq = time.perf_counter()
    for qid, text in queries:
        t = time.perf_counter()
        rankings[qid] = one(text)
        lat.append((time.perf_counter() - t) * 1000)
    seq_s = time.perf_counter() - t_seq
    out["sequential"] = {"latency": stats(lat), "wall_s": seq_s, "qps": len(queries) / seq_s if seq_s else 0}

    # The same, with one torch thread: what each service worker child gets.
    torch.set_num_threads(1)
    one(queries[0][1])
    lat1 = []
    t_seq = time.perf_counter()
    for qid, text in queries:
        t = time.perf_counter()
        ranked = one(text)
        lat1.append((time.perf_counter() - t) * 1000)
    seq1 = time.perf_counter() - t_seq
    out["sequential_1thread"] = {"latency": stats(lat1), "qps": len(queries) / seq1 if seq1 else 0}
    torch.set_num_threads(out["torch_threads"])

    # Upper bound: all queries in one batched encode + one FAISS search.
    t = time.perf_counter()
    index.search(embedder.encode([q for _, q in queries]), TOP_K)
    batch_s = time.perf_counter() - t
    out["batched_qps"] = len(queries) / batch_s if batch_s else 0

    out["rankings"] = rankings
    out["memory"] = {
        "peak_rss_mb": proc_status(os.getpid()).get("VmHWM", 0) / 1024,
        "final_rss_mb": proc_status(os.getpid()).get("VmRSS", 0) / 1024,
    }
    Path(args.baseline).write_text(json.dumps(out))


# --- machine and report ---------------------------------------------------------------------


def machine_info() -> dict:
    info = {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "kernel": platform.release(),
    }
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                info["cpu_model"] = line.split(":", 1)[1].strip()
                break
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                info["ram_gb"] = int(line.split()[1]) / 1024 / 1024
        info["loadavg_at_start"] = Path("/proc/loadavg").read_text().split()[:3]
    except OSError:
        pass
    versions = {}
    for mod in ("torch", "sentence_transformers", "faiss", "celery", "sqlalchemy", "numpy"):
        try:
            m = __import__(mod)
            versions[mod] = getattr(m, "__version__", "?")
        except Exception:  # noqa: BLE001
            pass
    info["versions"] = versions
    try:
        git = ["git", "-C", str(ROOT)]
        info["git_head"] = subprocess.run(git + ["rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
        info["git_dirty"] = [
            line[3:] for line in subprocess.run(git + ["status", "--porcelain", "--untracked-files=all"], capture_output=True, text=True).stdout.splitlines()
            if line[3:] and not line[3:].startswith(("bench/", "docs/benchmarks.md"))
        ]
    except OSError:
        pass
    return info


def versions_in_subprocess() -> dict:
    code = (
        "import json,torch,sentence_transformers,faiss,celery,sqlalchemy,numpy;"
        "print(json.dumps({m.__name__:getattr(m,'__version__','?') for m in "
        "(torch,sentence_transformers,faiss,celery,sqlalchemy,numpy)}))"
    )
    try:
        return json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    except Exception:  # noqa: BLE001
        return {}


def cpu_busy_seconds() -> float:
    """Busy CPU time of the whole machine since boot, in core-seconds."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle + iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    """CPU time of this process and of its reaped children (the service
    processes, redis, the baseline process)."""
    t = os.times()
    return t.user + t.system + t.children_user + t.children_system


def cpu_phase(busy0: float, own0: float, t0: float) -> dict:
    """CPU used by other processes since (busy0, own0, t0); exact once this
    process has reaped every child it started in the phase."""
    wall = time.perf_counter() - t0
    other = max(0.0, (cpu_busy_seconds() - busy0) - (own_cpu_seconds() - own0))
    return {"wall_s": wall, "other_core_s": other, "other_share": other / (wall * len(os.sched_getaffinity(0)))}


def fmt(x, digits=1):
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "n/a"
    return f"{x:,.{digits}f}"


def render(results: dict) -> str:
    m, cfg = results["machine"], results["config"]
    svc, base = results["service"], results["baseline"]
    sq, cc = svc["sequential"], svc["concurrent"]
    bq, b1 = base["sequential"], base["sequential_1thread"]
    qs, qb = results["quality"]["service"], results["quality"]["baseline"]
    ing, bing = svc["ingest"], base["ingest"]
    mem = svc["memory"]
    full = cfg["docs"] == cfg["corpus_docs"] and cfg["queries"] == cfg["qrels_queries"]
    lines = []
    add = lines.append
    add("# Benchmarks")
    add("")
    add(
        "Quarry end to end (HTTP → SQL job row → Redis → Celery worker → sentence-transformers + FAISS → "
        "job row → client poll) against the same search core called in one Python process, on BEIR SciFact. "
        "Produced by `make bench` (`.venv/bin/python bench/run.py`); every number below comes from one run."
    )
    add("")
    add(f"- Date: {results['date']} (run took {results['total_s'] / 60:.1f} min)")
    add(
        f"- Machine: {m.get('nproc')} CPUs ({m.get('cpu_model', '?')}), {m.get('ram_gb', 0):.1f} GB RAM, "
        f"Linux {m.get('kernel')}, Python {m.get('python')}; load average at start {' '.join(m.get('loadavg_at_start', []))}"
    )
    if m.get("git_head"):
        dirty = [d for d in m.get("git_dirty") or [] if d != "docs/"]  # docs/ = this report only
        add(
            f"- Code: commit {m['git_head']}"
            + (f" plus uncommitted changes to {', '.join(f'`{d}`' for d in dirty)}" if dirty else " (clean tree)")
            + ("; the API took an API key (one made for the run, tier "
               f"`{BENCH_TIER}` with its rate limit raised so the limiter never refused the benchmark)"
               if results["service"].get("api_key") else "")
        )
    v = m.get("versions", {})
    add("- Versions: " + ", ".join(f"{k} {val}" for k, val in v.items()))
    add(
        f"- Data: SciFact (BEIR), {cfg['docs']} of {cfg['corpus_docs']} documents, {cfg['queries']} of "
        f"{cfg['qrels_queries']} test queries{'' if full else ' (**subset run**)'}; document text = title + \". \" + abstract"
    )
    add(
        f"- Settings: model {cfg['model']}, chunks of {cfg['chunk_tokens']} tokens with {cfg['chunk_overlap_tokens']} "
        f"overlap, embed batch {cfg['embed_batch_size']}, pipeline `dense`, top_k {TOP_K}, exact inner product "
        f"(FAISS IndexFlatIP)"
    )
    add(
        f"- Service: SQLite (WAL) in a temp dir, private redis-server, gunicorn 1 process × 4 threads, ONE Celery "
        f"worker with concurrency {WORKER_CONCURRENCY} (so 1 torch thread per child); ingest as JSON in requests of "
        f"{INGEST_BATCH} documents, all submitted at once and polled every {cfg.get('ingest_poll_s', 0.1):g} s; the client polls `GET /api/v1/jobs/{{id}}` every "
        f"{POLL_INTERVAL * 1000:.0f} ms; {WARMUP_QUERIES + 2} untimed warm-up searches first"
    )
    add(
        f"- Baseline: a fresh Python process after the service was stopped; `Embedder` + `chunk_text` + "
        f"`VectorIndex`, one query at a time (encode + search), torch threads = {base['torch_threads']}"
    )
    cpu = results.get("cpu")
    if cpu:
        add(
            f"- Other load: processes outside the benchmark used {fmt(cpu['other_core_s'])} core-seconds during the "
            f"run ({fmt(cpu['other_share'] * 100)}% of the machine's {m.get('nproc')} cores), the benchmark "
            f"{fmt(cpu['benchmark_core_s'])}"
            + "".join(
                f"; {name} phase: {fmt(ph['other_share'] * 100)}% of the machine"
                for name, ph in (cpu.get("phases") or {}).items()
            )
        )
    add("")
    add("## Results")
    add("")
    add("| | Service (HTTP jobs) | In-process baseline |")
    add("|---|---|---|")
    add(
        f"| Search latency, sequential, p50 / p95 / p99 (ms) | {fmt(sq['latency']['p50'])} / {fmt(sq['latency']['p95'])} / "
        f"{fmt(sq['latency']['p99'])} | {fmt(bq['latency']['p50'])} / {fmt(bq['latency']['p95'])} / {fmt(bq['latency']['p99'])} |"
    )
    add(f"| Search latency, sequential, mean (ms) | {fmt(sq['latency']['mean'])} | {fmt(bq['latency']['mean'])} |")
    add(
        f"| Worker-side `took_ms`, p50 / p95 (ms) | {fmt(sq['took']['p50'])} / {fmt(sq['took']['p95'])} | "
        f"(1 torch thread: {fmt(b1['latency']['p50'])} / {fmt(b1['latency']['p95'])}) |"
    )
    add(f"| Throughput, one client, sequential (queries/s) | {fmt(sq['qps'], 2)} | {fmt(bq['qps'], 2)} |")
    add(
        f"| Throughput, {cc['clients']} concurrent clients (queries/s) | {fmt(cc['qps'], 2)} | "
        f"batched encode of all queries: {fmt(base['batched_qps'], 1)} |"
    )
    add(
        f"| Latency with {cc['clients']} clients, p50 / p95 / p99 (ms) | {fmt(cc['latency']['p50'])} / "
        f"{fmt(cc['latency']['p95'])} / {fmt(cc['latency']['p99'])} | – |"
    )
    add(
        f"| Ingest / index build: wall time (s) | {fmt(ing['wall_s'])} | {fmt(bing['total_s'])} "
        f"(chunk {fmt(bing['chunk_s'])}, embed {fmt(bing['embed_s'])}, index {fmt(bing['index_s'], 2)}) |"
    )
    add(f"| Ingest: documents/s | {fmt(ing['docs_per_s'])} | {fmt(bing['docs_per_s'])} |")
    add(
        f"| Ingest: chunks/s (chunks) | {fmt(ing['chunks_per_s'])} ({ing['chunks']}) | {fmt(bing['chunks_per_s'])} "
        f"({bing['chunks']}); embedding alone {fmt(bing['embed_chunks_per_s'])} |"
    )
    add(f"| nDCG@10 | {qs['ndcg@10']:.4f} | {qb['ndcg@10']:.4f} |")
    add(f"| Recall@10 | {qs['recall@10']:.4f} | {qb['recall@10']:.4f} |")
    w = mem["worker"]
    add(
        f"| Peak RSS (MB) | worker: {fmt(w['sum_hwm_mb'], 0)} summed over {w['processes']} processes "
        f"({' + '.join(fmt(x, 0) for x in w['per_process_hwm_mb'])}); peak PSS sum {fmt(w['peak_pss_sum_mb'], 0)} | "
        f"{fmt(base['memory']['peak_rss_mb'], 0)} |"
    )
    add("")
    web = mem.get("web", {})
    add(
        f"Web process (gunicorn master + 1 worker), not in the table: peak RSS {fmt(web.get('sum_hwm_mb'), 0)} MB summed. "
        f"Failed jobs: ingest {sum(1 for s in ing['statuses'] if s != 'succeeded')}, searches "
        f"{sq['failed']} sequential + {cc['failed']} concurrent; jobs needing a second attempt: "
        f"{sq['retried'] + cc['retried']}; tracebacks in the service logs: "
        f"{sum(f['tracebacks'] for f in svc['log_findings'].values())}. "
        f"Identical rankings between the sequential and concurrent service runs: "
        f"{cc['same_rankings_as_sequential']}/{cfg['queries']}."
    )
    add("")
    add("### Where a service search spends its time (ms)")
    add("")
    ph = sq["phases"]
    pc = cc["phases"]
    add(f"| Phase | Sequential p50 | Sequential p95 | {cc['clients']} clients p50 | {cc['clients']} clients p95 |")
    add("|---|---|---|---|---|")
    names = {
        "post_to_row": "POST until the job row's `created_at`",
        "queue": "`created_at` → `started_at` (commit, Redis, Celery delivery, claim)",
        "run": "`started_at` → `finished_at` (handler incl. `took_ms`, result write)",
        "notice": "`finished_at` → client sees it (poll interval + GET)",
    }
    for key, label in names.items():
        add(f"| {label} | {fmt(ph[key]['p50'])} | {fmt(ph[key]['p95'])} | {fmt(pc[key]['p50'])} | {fmt(pc[key]['p95'])} |")
    add(
        f"| Whole search as the client sees it | {fmt(sq['latency']['p50'])} | {fmt(sq['latency']['p95'])} | "
        f"{fmt(cc['latency']['p50'])} | {fmt(cc['latency']['p95'])} |"
    )
    add("")
    add(
        "Phases come from the job row's timestamps and the client's clock (one machine, one clock); each column is "
        "its own percentile, so the rows do not add up exactly."
    )
    add("")
    cpu_phases = svc.get("cpu_by_phase")
    if cpu_phases:
        add("### Who used the two cores (average cores busy per phase of the service run)")
        add("")
        add("| Phase | Wall (s) | Worker (parent + children) | Web (gunicorn) | Redis | Benchmark client | Other processes | Idle |")
        add("|---|---|---|---|---|---|---|---|")
        for name, ph in cpu_phases.items():
            add(
                f"| {name} | {fmt(ph['wall_s'])} | {fmt(ph.get('worker_cores'), 2)} | {fmt(ph.get('web_cores'), 2)} | "
                f"{fmt(ph.get('redis_cores'), 2)} | {fmt(ph.get('driver_cores'), 2)} | {fmt(ph.get('other_cores'), 2)} | "
                f"{fmt(ph.get('idle_cores'), 2)} |"
            )
        add("")
    add("## Interpretation")
    add("")
    for para in results.get("interpretation", []):
        add(para)
        add("")
    add("## Reproduce")
    add("")
    add("```")
    add("make bench            # or: .venv/bin/python bench/run.py")
    add("```")
    add("")
    add(
        "Needs the SciFact files at `../shared/datasets/scifact/` (or `--dataset PATH`) and `redis-server` on PATH. "
        "`--docs N --queries N --output /tmp/b.md` gives a quick run. See `bench/README.md`."
    )
    add("")
    return "\n".join(lines)


def sqlite_reads_deferred(results: dict) -> bool | None:
    """Whether the measured code let GET requests read SQLite without taking
    the write lock (Database.reads_only, commit 5f5c395 on)."""
    head = results["machine"].get("git_head")
    if not head:
        return None
    shown = subprocess.run(
        ["git", "-C", str(ROOT), "show", f"{head}:app/extensions.py"], capture_output=True, text=True
    )
    if shown.returncode != 0:
        return None
    return "def reads_only" in shown.stdout


def interpret(results: dict) -> list[str]:
    svc, base = results["service"], results["baseline"]
    sq, cc = svc["sequential"], svc["concurrent"]
    ph = sq["phases"]
    qs, qb = results["quality"]["service"], results["quality"]["baseline"]
    ing, bing = svc["ingest"], base["ingest"]
    b1 = base["sequential_1thread"]
    paras = []
    overhead = sq["latency"]["p50"] - sq["took"]["p50"]
    paras.append(
        f"**Latency.** Inside the worker a search takes {fmt(sq['took']['p50'])} ms (p50 of `took_ms`: the "
        f"collection lookup, query encoding, FAISS, hydrating the hits from SQL) against "
        f"{fmt(b1['latency']['p50'])} ms for encode + search in process with one torch thread, which is what each "
        f"worker child gets ({fmt(base['sequential']['latency']['p50'])} ms with two). The client sees "
        f"{fmt(sq['latency']['p50'])} ms, so about {fmt(overhead)} ms of the median is job-service overhead "
        f"outside the handler: the POST until the job row exists ({fmt(ph['post_to_row']['p50'])} ms"
        + ("; every request also looks its API key up in SQL and counts against the rate limit in Redis"
           if svc.get("api_key") else "")
        + f"), commit, "
        f"enqueue to Redis, Celery delivery and the claim UPDATE ({fmt(ph['queue']['p50'])} ms), the job row's "
        f"claim → finish ({fmt(ph['run']['p50'])} ms, of which `took_ms` is the handler and the rest the claim "
        f"bookkeeping and the result write), and waiting for the client's next poll ({fmt(ph['notice']['p50'])} ms: "
        f"the {POLL_INTERVAL * 1000:.0f} ms interval costs about half an interval plus one GET on average; "
        f"{fmt(sq['polls_mean'], 2)} polls per search). The client only learns of a result at a poll, so latency "
        f"moves in steps of one poll cycle (the sleep plus a GET): a search that finishes just after a poll is "
        f"seen one cycle later. That is why p50 and p95 sit close together, and why a few milliseconds more or "
        f"less in the worker can move the median by a whole cycle between runs. The API's own `Retry-After` "
        f"on a running search says 1 s; a client that obeys it waits about a second per search, so the "
        f"{POLL_INTERVAL * 1000:.0f} ms polling here buys low latency with web-process CPU."
    )
    deferred = sqlite_reads_deferred(results)
    if deferred is True:
        lock_sentence = (
            "In the code measured GET requests read SQLite with a deferred BEGIN, so the polls do not wait for "
            "the write lock; job-row inserts, claims, checkpoints and results still take it one at a time. "
        )
    elif deferred is False:
        lock_sentence = (
            "In the code measured every SQLite transaction started with BEGIN IMMEDIATE (app/extensions.py), so "
            "even the pollers' read-only GETs took the database write lock in turn with the worker's claim/finish "
            "writes. "
        )
    else:
        lock_sentence = ""
    conc_cpu = (svc.get("cpu_by_phase") or {}).get("concurrent")
    if conc_cpu:
        used = sum(conc_cpu.get(k, 0) for k in ("worker_cores", "web_cores", "driver_cores", "redis_cores"))
        http_share = (conc_cpu["web_cores"] + conc_cpu["driver_cores"]) / used if used else float("nan")
        cpu_sentence = (
            f"During the concurrent phase the worker kept {fmt(conc_cpu['worker_cores'], 2)} cores busy, the web "
            f"process {fmt(conc_cpu['web_cores'], 2)}, the benchmark's own client threads "
            f"{fmt(conc_cpu['driver_cores'], 2)} and Redis {fmt(conc_cpu['redis_cores'], 2)} "
            f"({fmt(conc_cpu['idle_cores'], 2)} idle of {results['machine'].get('nproc')}), so the HTTP side "
            f"(web + clients) took {fmt(http_share * 100, 0)}% of the CPU the service run used. "
        )
    else:
        cpu_sentence = ""
    paras.append(
        f"**Throughput.** One client gets {fmt(sq['qps'], 2)} searches/s from the service against "
        f"{fmt(base['sequential']['qps'], 2)}/s in process. With {cc['clients']} clients the service reaches "
        f"{fmt(cc['qps'], 2)}/s"
        + (f", hardly more than one client gets" if cc["qps"] < 1.25 * sq["qps"] else "")
        + f"; p50 latency rises to {fmt(cc['latency']['p50'])} ms, of which queue wait is "
        f"{fmt(cc['phases']['queue']['p50'])} ms (p50) — two worker children serve {cc['clients']} clients, and the "
        f"web process, the {cc['clients']} pollers (each polling every {POLL_INTERVAL * 1000:.0f} ms) and SQLite "
        f"share the same two cores with them. "
        + cpu_sentence
        + lock_sentence
        + f"Batching queries (the pipeline supports it) is far cheaper: "
        f"{fmt(base['batched_qps'], 0)} queries/s in process when encoded together."
    )
    ratio = ing["docs_per_s"] / bing["docs_per_s"] if bing["docs_per_s"] else float("nan")
    ing_cpu = (svc.get("cpu_by_phase") or {}).get("ingest")
    paras.append(
        f"**Ingest.** The service ingested {ing['documents']} documents ({ing['chunks']} chunks) in "
        f"{fmt(ing['wall_s'])} s, {fmt(ing['docs_per_s'])} docs/s; the baseline chunks, embeds and indexes the "
        f"same corpus in {fmt(bing['total_s'])} s ({fmt(bing['docs_per_s'])} docs/s), so the service runs at "
        f"{fmt(ratio * 100, 0)}% of it. Embedding dominates both; next to it the service's extra work costs "
        f"little: it embeds 16 documents' chunks per encode call (DOCS_PER_CHECKPOINT) rather than the whole "
        f"corpus sorted by length, writes every chunk row with its vector to SQL, checkpoints the job row after "
        f"every 16 documents, and at the end of each of the {ing['requests']} jobs re-reads the collection's "
        f"chunk ids and new vectors and writes a new FAISS generation file. With {ing['requests']} jobs queued "
        f"at once the two worker children embed in parallel, one torch thread each"
        + (
            f" (the worker kept {fmt(ing_cpu['worker_cores'], 2)} cores busy during the ingest)"
            if ing_cpu else ""
        )
        + "; one ingest job alone runs in one child with one torch thread, so a client that sends everything "
        f"in one job gets about half of this machine. Worker-side job durations (claim → finish): "
        f"{', '.join(fmt(s, 1) for s in ing['job_seconds'])} s."
    )
    diff = qs["ndcg@10"] - qb["ndcg@10"]
    paras.append(
        f"**Quality.** nDCG@10 is {qs['ndcg@10']:.4f} through the service and {qb['ndcg@10']:.4f} in process "
        f"(difference {diff:+.4f}); Recall@10 {qs['recall@10']:.4f} vs {qb['recall@10']:.4f}. "
        + (
            "The two paths rank identically, as they should: same model, same chunks, exact search. "
            if abs(diff) < 0.002
            else "The small difference comes from the different batch composition of the embeddings "
            "(padding changes float results slightly) and from ties. "
        )
        + f"The published all-MiniLM-L6-v2 nDCG@10 on SciFact is about {PUBLISHED_NDCG}; ours is "
        f"{qb['ndcg@10'] - PUBLISHED_NDCG:+.3f} from it. "
        + (
            ""
            if results["config"]["docs"] == results["config"]["corpus_docs"]
            else f"**This is not comparable**: the run searched {results['config']['docs']} of the "
            f"{results['config']['corpus_docs']} documents (every judged document of the queries plus the first "
            f"others), so there are fewer distractors and the score is higher than on the whole corpus. "
        )
        + ("Other differences" if results["config"]["docs"] != results["config"]["corpus_docs"] else "Differences")
        + " from the published setup: documents are "
        f"split into {results['config']['chunk_tokens']}-token chunks and ranked by their best chunk (the published "
        f"number embeds each whole abstract, truncated at 256 word pieces), title and abstract are joined with "
        f"\". \" instead of a space, and only {TOP_K} chunks are retrieved, so a query whose top chunks come from "
        f"fewer documents ranks fewer than {TOP_K} documents."
    )
    mem = svc["memory"]["worker"]
    paras.append(
        f"**Memory.** The worker (Celery parent + {mem['processes'] - 1} prefork children) peaked at "
        f"{fmt(mem['sum_hwm_mb'], 0)} MB summed RSS ({fmt(mem['peak_pss_sum_mb'], 0)} MB PSS, which counts pages "
        f"shared after fork once): each child loads its own copy of the model and of the collection's index. The "
        f"baseline process peaked at {fmt(base['memory']['peak_rss_mb'], 0)} MB holding one model, all vectors and "
        f"the whole corpus in memory."
    )
    return paras


# --- main -------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="BEIR SciFact directory")
    parser.add_argument("--docs", type=int, default=None, help="use N documents (default: all)")
    parser.add_argument("--queries", type=int, default=None, help="use the first N test queries (default: all)")
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown report (overwritten)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--render", type=Path, default=None, help="only re-render the report from a --json file")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (service logs, database)")
    parser.add_argument("--ingest-timeout", type=float, default=1800)
    parser.add_argument("--attempts", type=int, default=4, help="service phase attempts if its processes get killed")
    parser.add_argument("--retry-wait", type=float, default=30.0)
    parser.add_argument("--baseline", type=str, default=None, help=argparse.SUPPRESS)  # internal
    args = parser.parse_args()
    args.dataset = args.dataset.resolve()

    if args.baseline:
        run_baseline(args)
        return 0
    if args.render:
        results = json.loads(args.render.read_text())
        results["interpretation"] = interpret(results)
        args.output.write_text(render(results))
        print(f"wrote {args.output}")
        return 0

    started = time.perf_counter()
    busy0, own0 = cpu_busy_seconds(), own_cpu_seconds()
    phase_t0 = time.perf_counter()
    phase_cpu: dict = {}

    def log(msg: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {msg}", flush=True)

    workdir = Path(tempfile.mkdtemp(prefix="quarry-bench-"))
    # In-process code of this driver (migrations) keeps its files out of var/.
    os.environ["QUARRY_VAR_DIR"] = str(workdir / "driver-var")
    for name in ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL", "TEST_DATABASE_URL"):
        os.environ.pop(name, None)

    docs, queries, qrels = load_dataset(args.dataset, args.docs, args.queries)
    _, all_q, _ = load_dataset(args.dataset, 0, None)
    corpus_docs = sum(1 for line in (args.dataset / "corpus.jsonl").open() if line.strip())
    from app.config import settings

    machine = machine_info()
    machine["versions"] = versions_in_subprocess()
    config = {
        "dataset": str(args.dataset),
        "docs": len(docs),
        "corpus_docs": corpus_docs,
        "queries": len(queries),
        "qrels_queries": len(all_q),
        "model": settings.embedding_model,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap_tokens": settings.chunk_overlap_tokens,
        "embed_batch_size": settings.embed_batch_size,
        "ingest_poll_s": INGEST_POLL_INTERVAL,
    }
    log(f"{len(docs)} documents, {len(queries)} queries; workdir {workdir}")
    log(f"machine: {machine.get('nproc')} CPUs, {machine.get('cpu_model')}, load {machine.get('loadavg_at_start')}")

    try:
        interruptions = []
        for attempt in range(1, args.attempts + 1):
            attempt_dir = workdir / f"service-{attempt}"
            try:
                service = run_service(args, docs, queries, attempt_dir, log)
                break
            except StackDied as exc:
                # Something outside the benchmark stopped our processes (seen:
                # a broad `pkill` of every gunicorn/celery of this project when
                # a developer's local service restarts). Start over, cleanly.
                interruptions.append(str(exc))
                log(f"service phase interrupted: {exc}")
                if attempt == args.attempts:
                    raise
                log(f"starting the service phase again in {args.retry_wait:.0f} s")
                time.sleep(args.retry_wait)
        service["interruptions"] = interruptions
        phase_cpu["service"] = cpu_phase(busy0, own0, phase_t0)
        busy1, own1, t1 = cpu_busy_seconds(), own_cpu_seconds(), time.perf_counter()
        log("service stopped; running the in-process baseline")
        baseline_json = workdir / "baseline.json"
        cmd = [sys.executable, str(Path(__file__).resolve()), "--baseline", str(baseline_json), "--dataset", str(args.dataset)]
        if args.docs is not None:
            cmd += ["--docs", str(args.docs)]
        if args.queries is not None:
            cmd += ["--queries", str(args.queries)]
        env = {**os.environ, "QUARRY_VAR_DIR": str(workdir / "baseline-var")}
        subprocess.run(cmd, check=True, cwd=ROOT, env=env)
        baseline = json.loads(baseline_json.read_text())
        phase_cpu["baseline"] = cpu_phase(busy1, own1, t1)
        b = baseline
        log(
            f"baseline: ingest {b['ingest']['total_s']:.1f} s ({b['ingest']['docs_per_s']:.1f} docs/s, "
            f"embed {b['ingest']['embed_chunks_per_s']:.1f} chunks/s), p50 {b['sequential']['latency']['p50']:.1f} ms, "
            f"p95 {b['sequential']['latency']['p95']:.1f} ms"
        )
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)

    results = {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine,
        "config": config,
        "service": {k: v for k, v in service.items() if k != "rankings"},
        "baseline": {k: v for k, v in baseline.items() if k != "rankings"},
        "quality": {"service": quality(service["rankings"], qrels), "baseline": quality(baseline["rankings"], qrels)},
        "total_s": time.perf_counter() - started,
    }
    busy, own = cpu_busy_seconds() - busy0, own_cpu_seconds() - own0
    results["cpu"] = {
        "machine_busy_core_s": busy,
        "benchmark_core_s": own,
        "other_core_s": max(0.0, busy - own),
        "other_share": max(0.0, busy - own) / (results["total_s"] * machine.get("nproc", 1)),
        "loadavg_at_end": Path("/proc/loadavg").read_text().split()[:3],
        "phases": phase_cpu,
    }
    results["rankings_identical"] = sum(
        1 for qid in qrels if service["rankings"].get(qid) == baseline["rankings"].get(qid)
    )
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    results["interpretation"] = interpret(results)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(render(results))

    sq, bq = results["service"]["sequential"], results["baseline"]["sequential"]
    qs, qb = results["quality"]["service"], results["quality"]["baseline"]
    print()
    print("=== Quarry benchmark (SciFact) ===")
    print(f"documents {config['docs']}, queries {config['queries']}, run {results['total_s'] / 60:.1f} min")
    print(f"ingest   service {service['ingest']['docs_per_s']:.1f} docs/s ({service['ingest']['chunks_per_s']:.1f} chunks/s)"
          f" | baseline {baseline['ingest']['docs_per_s']:.1f} docs/s (embed {baseline['ingest']['embed_chunks_per_s']:.1f} chunks/s)")
    print(f"latency  service p50 {sq['latency']['p50']:.1f} / p95 {sq['latency']['p95']:.1f} / p99 {sq['latency']['p99']:.1f} ms"
          f" (took_ms p50 {sq['took']['p50']:.1f})"
          f" | baseline p50 {bq['latency']['p50']:.1f} / p95 {bq['latency']['p95']:.1f} / p99 {bq['latency']['p99']:.1f} ms")
    cc = results["service"]["concurrent"]
    print(f"throughput service {sq['qps']:.2f} q/s sequential, {cc['qps']:.2f} q/s with {cc['clients']} clients"
          f" (p50 {cc['latency']['p50']:.1f}, p95 {cc['latency']['p95']:.1f} ms) | baseline {bq['qps']:.2f} q/s")
    print(f"quality  nDCG@10 service {qs['ndcg@10']:.4f} baseline {qb['ndcg@10']:.4f} (published ~{PUBLISHED_NDCG});"
          f" Recall@10 {qs['recall@10']:.4f} / {qb['recall@10']:.4f}; identical rankings {results['rankings_identical']}/{len(qrels)}")
    wm = results["service"]["memory"]["worker"]
    print(f"memory   worker peak RSS {wm['sum_hwm_mb']:.0f} MB summed over {wm['processes']} processes"
          f" (PSS {wm['peak_pss_sum_mb']:.0f} MB) | baseline {baseline['memory']['peak_rss_mb']:.0f} MB")
    cpu = results["cpu"]
    print(f"other load {cpu['other_share'] * 100:.1f}% of the machine during the run"
          + "".join(f", {k} phase {v['other_share'] * 100:.1f}%" for k, v in cpu["phases"].items()))
    errs = results["service"]["errors"]
    if errs:
        print(f"ERRORS ({len(errs)}): " + "; ".join(errs[:5]))
    print(f"report: {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
