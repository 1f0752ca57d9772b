"""The load driver: what the benchmark's clients do over HTTP.

A search is a job: POST it, then poll GET /api/v1/jobs/{id} until it is
final; its latency is what the client sees. Searches run one at a time
(sequential) and from closed-loop client threads (concurrent). The corpus is
ingested as JSON requests, all submitted at once, and polled until done.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from app.services.jobs import TERMINAL, JobStatus
from bench.dataset import document_ranking, document_text
from bench.parameters import (
    CLIENT_THREADS,
    COLLECTION,
    INGEST_BATCH,
    INGEST_POLL_INTERVAL,
    SEARCH_POLL_INTERVAL,
    SEARCH_TIMEOUT,
    TOP_K,
    WARMUP_QUERIES,
    WORKER_CONCURRENCY,
)
from bench.timing import epoch_seconds, latency_stats
from devstack.client import Client

SEARCH_PHASES = ("post_to_row", "queue", "run", "notice", "created_to_finished")
SearchFunction = Callable[[Client, str], dict]


# --- one search -----------------------------------------------------------------


def timed_search(client: Client, query: str, collection: str = COLLECTION) -> dict:
    """POST a dense search job and poll it until final, timed as the client
    sees it; {"error": ...} when it did not succeed."""
    posted_wall, t0 = time.time(), time.perf_counter()
    response = client.post(
        f"/api/v1/collections/{collection}/search", json={"query": query, "top_k": TOP_K, "pipeline": "dense"}
    )
    post_ms = (time.perf_counter() - t0) * 1000
    if response.status_code != 202:
        return {"error": f"POST {response.status_code}: {response.text[:300]}", "latency_ms": None}
    accepted = response.json()
    job, polls, bad_polls = poll_until_final(client, accepted, deadline=t0 + SEARCH_TIMEOUT)
    seen = time.perf_counter()
    if job is None:
        return {"error": f"job {accepted['id']} not final after {SEARCH_TIMEOUT:.0f} s", "latency_ms": None}
    out = {
        "job_id": accepted["id"],
        "status": job["status"],
        "attempts": job["attempts"],
        "latency_ms": (seen - t0) * 1000,
        "post_ms": post_ms,
        "polls": polls,
        "bad_polls": bad_polls,
    }
    if job["status"] != JobStatus.SUCCEEDED:
        out["error"] = f"job {accepted['id']} {job['status']}: {job['error']}"
        return out
    out["took_ms"] = job["result"]["took_ms"]
    out["doc_ids"] = [hit["document_id"] for hit in job["result"]["hits"]]
    out["phases_ms"] = search_phases_ms(job, posted_wall, seen_wall=posted_wall + (seen - t0))
    return out


def poll_until_final(client: Client, accepted: dict, deadline: float) -> tuple[dict | None, int, int]:
    """(the final job or None at the deadline, polls made, polls not answered
    200 or 304). Polls as a well-behaved client does: after the job's own
    `poll_after_ms` hint (never sooner than SEARCH_POLL_INTERVAL), sending
    the last ETag so an unchanged job answers 304."""
    job, etag = accepted, None
    polls = bad_polls = 0
    while True:
        time.sleep(max(SEARCH_POLL_INTERVAL, job.get("poll_after_ms", 0) / 1000))
        reply = client.get(f"/api/v1/jobs/{accepted['id']}", headers={"If-None-Match": etag} if etag else {})
        polls += 1
        if reply.status_code == 200:
            job, etag = reply.json(), reply.headers.get("ETag")
            if job["status"] in TERMINAL:
                return job, polls, bad_polls
        elif reply.status_code != 304:
            bad_polls += 1
        if time.perf_counter() > deadline:
            return None, polls, bad_polls


def search_phases_ms(job: dict, posted_wall: float, seen_wall: float) -> dict:
    """Where a search's time went, from the job row's timestamps and the
    client's clock (one machine, one clock)."""
    created, started, finished = (epoch_seconds(job[k]) for k in ("created_at", "started_at", "finished_at"))
    return {
        "post_to_row": (created - posted_wall) * 1000,  # request parse, key lookup, until the row's timestamp
        "queue": (started - created) * 1000,  # commit, enqueue, Redis, Celery delivery, claim
        "run": (finished - started) * 1000,  # claim -> result row (handler + DB writes)
        "notice": (seen_wall - finished) * 1000,  # until the client's poll saw it
        "created_to_finished": (finished - created) * 1000,  # queue + run: the job service's own time
    }


# --- search phases -----------------------------------------------------------------


def warm_up_searches(new_client: Callable[[], Client], queries: list[tuple[str, str]]) -> None:
    """Untimed searches that load the index into each worker child: some one
    at a time, then one per child at once."""
    client = new_client()
    for _, text in queries[:WARMUP_QUERIES]:
        timed_search(client, text)
    run_concurrently(new_client, queries[:WORKER_CONCURRENCY], clients=WORKER_CONCURRENCY)


def run_sequentially(
    client: Client, queries: list[tuple[str, str]], log: Callable[[str], None], search: SearchFunction = timed_search
) -> list[dict]:
    results = []
    for done, (qid, text) in enumerate(queries, start=1):
        results.append({**search(client, text), "qid": qid})
        if done % 50 == 0:
            log(f"  sequential: {done}/{len(queries)}")
    return results


def run_concurrently(
    new_client: Callable[[], Client],
    queries: list[tuple[str, str]],
    clients: int = CLIENT_THREADS,
    search: SearchFunction = timed_search,
) -> list[dict]:
    """Every query once, from `clients` closed-loop threads, each with its own
    HTTP session: a thread sends its next search when its last one is final
    (`search` returns it timed; the peer, bench/peer_txtai.py, passes its own)."""
    lock = threading.Lock()
    pending = iter(queries)
    results: list[dict] = []

    def client_loop() -> None:
        client = new_client()
        while True:
            with lock:
                item = next(pending, None)
            if item is None:
                return
            qid, text = item
            try:
                result = search(client, text)
            except Exception as exc:  # noqa: BLE001 - reported, not raised
                result = {"error": f"{type(exc).__name__}: {exc}", "latency_ms": None}
            with lock:
                results.append({**result, "qid": qid})

    threads = [threading.Thread(target=client_loop) for _ in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


def summarize_searches(results: list[dict], wall_s: float) -> dict:
    """Throughput, latency and phase percentiles of the searches that
    succeeded; counts of those that did not."""
    ok = [r for r in results if r.get("status") == JobStatus.SUCCEEDED]
    return {
        "wall_s": wall_s,
        "qps": len(ok) / wall_s if wall_s else 0,
        "latency": latency_stats([r["latency_ms"] for r in ok]),
        "took": latency_stats([r["took_ms"] for r in ok]),
        "post": latency_stats([r["post_ms"] for r in ok]),
        "polls_mean": sum(r["polls"] for r in ok) / len(ok) if ok else 0,
        "phases": {phase: latency_stats([r["phases_ms"][phase] for r in ok]) for phase in SEARCH_PHASES},
        "failed": len(results) - len(ok),
        "bad_polls": sum(r.get("bad_polls", 0) for r in results),
        "retried": sum(1 for r in ok if r["attempts"] > 1),
    }


def rankings(results: list[dict]) -> dict[str, list[str]]:
    """Document ranking per query id; empty for a search that failed."""
    return {r["qid"]: document_ranking(r.get("doc_ids", [])) for r in results}


# --- ingest -------------------------------------------------------------------------


def warm_up_worker(client: Client) -> None:
    """The worker logs "ready" before its pool children have loaded the
    model: one tiny ingest job per child waits for that, so the measured
    ingest starts with a warm worker."""
    job_ids = [
        submit_ingest(client, "warmup", [{"id": f"w{n}", "text": f"warm-up document number {n}"}])
        for n in range(WORKER_CONCURRENCY)
    ]
    for job_id in job_ids:
        job = client.wait_job(job_id, timeout=300)
        if job["status"] != JobStatus.SUCCEEDED:
            raise RuntimeError(f"warm-up ingest job {job_id} ended {job['status']}: {job['error']}")


def submit_ingest(client: Client, collection: str, documents: list[dict]) -> str:
    response = client.post(f"/api/v1/collections/{collection}/documents", json={"documents": documents})
    if response.status_code != 202:
        raise RuntimeError(f"ingest POST answered {response.status_code}: {response.text[:500]}")
    return response.json()["id"]


def ingest_corpus(
    client: Client,
    documents: list[dict],
    timeout: float,
    check_alive: Callable[[], None],
    batch: int | None = INGEST_BATCH,
    collection: str = COLLECTION,
) -> dict:
    """Ingest the corpus in requests of `batch` documents (None: one job for
    all), all submitted before the first poll; `check_alive` raises if a
    service process died."""
    t0 = time.perf_counter()
    job_ids = submit_corpus(client, documents, check_alive, batch, collection)
    submit_s = time.perf_counter() - t0
    jobs = wait_for_jobs(client, job_ids, timeout, check_alive)
    return summarize_ingest(jobs, submit_s, wall_s=time.perf_counter() - t0, batch=batch or len(documents))


def submit_corpus(
    client: Client,
    documents: list[dict],
    check_alive: Callable[[], None],
    batch: int | None = INGEST_BATCH,
    collection: str = COLLECTION,
) -> list[str]:
    """The ingest jobs' ids, one job per `batch` documents (None: one job)."""
    size = batch or len(documents)
    job_ids = []
    for i in range(0, len(documents), size):
        check_alive()
        part = [
            {"id": str(d["_id"]), "text": document_text(d), "metadata": {"title": d.get("title") or ""}}
            for d in documents[i : i + size]
        ]
        job_ids.append(submit_ingest(client, collection, part))
    return job_ids


def wait_for_jobs(client: Client, job_ids: list[str], timeout: float, check_alive: Callable[[], None]) -> list[dict]:
    """The final jobs, in the order of `job_ids`."""
    pending, final = set(job_ids), {}
    deadline = time.monotonic() + timeout
    while pending:
        for job_id in sorted(pending):
            job = client.get(f"/api/v1/jobs/{job_id}").json()
            if job["status"] in TERMINAL:
                final[job_id] = job
                pending.discard(job_id)
        if pending:
            check_alive()
            if time.monotonic() > deadline:
                raise RuntimeError(f"ingest not finished after {timeout} s: {sorted(pending)}")
            time.sleep(INGEST_POLL_INTERVAL)
    return [final[job_id] for job_id in job_ids]


def summarize_ingest(jobs: list[dict], submit_s: float, wall_s: float, batch: int) -> dict:
    results = [job["result"] for job in jobs if job["status"] == JobStatus.SUCCEEDED]
    documents = sum(r["documents"] for r in results)
    chunks = sum(r["chunks"] for r in results)
    ran = [job for job in jobs if job["started_at"]]
    return {
        "requests": len(jobs),
        "batch": batch,
        "submit_s": submit_s,
        "wall_s": wall_s,
        # First job created -> last job finished, on the service's clock.
        "server_wall_s": max(epoch_seconds(j["finished_at"]) for j in jobs)
        - min(epoch_seconds(j["created_at"]) for j in jobs),
        "documents": documents,
        "chunks": chunks,
        "skipped_duplicates": sum(r["skipped_duplicates"] for r in results),
        "failed_documents": [failure for r in results for failure in r["failed"]],
        "statuses": [job["status"] for job in jobs],
        "attempts": [job["attempts"] for job in jobs],
        "errors": [job["error"] for job in jobs if job["error"]],
        # Claim -> finish of each job that a worker ran.
        "job_seconds": [epoch_seconds(j["finished_at"]) - epoch_seconds(j["started_at"]) for j in ran],
        "docs_per_s": documents / wall_s if wall_s else 0,
        "chunks_per_s": chunks / wall_s if wall_s else 0,
    }


def server_chunks_per_s(ingest: dict) -> float:
    """Chunks per second of the jobs' own time: first created -> last finished."""
    return ingest["chunks"] / ingest["server_wall_s"] if ingest["server_wall_s"] else 0.0
