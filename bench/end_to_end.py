"""The `all` suite (`make bench`), in order: the service (probe searches on
the idle service; the whole corpus as ONE ingest job, the same searches while
it runs; every query sequentially, then from CLIENT_THREADS clients; the load
test); the in-process baseline; the peer (txtai); the worker-memory suite.
Rankings are scored against the qrels (nDCG@10, Recall@10 by document)."""

from __future__ import annotations

import shutil
import tempfile
import time
import traceback
from itertools import cycle
from pathlib import Path

from app.services.jobs import TERMINAL
from bench import baseline, load, memory, peer, service
from bench.common import TOP_K, WORKER_CONCURRENCY, Log, settings
from bench.dataset import SciFact, document_ranking, load_scifact, quality
from bench.measure import CpuMeter, MemorySampler, OtherLoad, mean_batch, search_batches
from devstack.processes import Stack

CLIENT_THREADS = 16
# As many as the poll hints' median is taken over, so the sequential phase's
# hints come from searches of its own collection, not from the probes.
WARMUP_QUERIES = 50
# Searches of a small collection of their own, PROBE_GAP_S apart, on the idle
# service and then while the large ingest runs: they differ only by the ingest.
PROBE_DOCS, PROBE_SEARCHES, PROBE_GAP_S = 200, 30, 1.0
# Every search is computed: the concurrent phase repeats the sequential one's queries.
SERVICE_ENV = {"SEARCH_CACHE_TTL_SECONDS": "0"}


def run(options: dict, log: Log) -> dict:
    """Every phase in turn; what each measured, and the load from outside the benchmark during each."""
    data = load_scifact(options["dataset"], options["docs"], options["queries"])
    workdir, phase = Path(tempfile.mkdtemp(prefix="quarry-bench-")), OtherLoad()
    out: dict = {"other_load": {}, "config": run_config(data)}
    try:
        out["service"] = service.with_retries(
            lambda n: run_service(data, workdir / f"service-{n}", options, log), 3, log
        )
        out["other_load"]["service"], phase = phase.measure(), OtherLoad()
        out["baseline"] = baseline.run_process(options, workdir)
        out["other_load"]["baseline"], phase = phase.measure(), OtherLoad()
        if not options["no_peer"]:
            out["peer"] = optional_phase("peer", lambda: peer.run(data, workdir / "peer", CLIENT_THREADS, log))
            out["other_load"]["peer"], phase = phase.measure(), OtherLoad()
        if not options["no_memory"]:
            out["memory"] = optional_phase("memory", lambda: memory.run({}, log))
            out["other_load"]["memory"] = phase.measure()
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    rankings = {
        name: out[name].pop("rankings") for name in ("service", "baseline", "peer") if "rankings" in out.get(name, {})
    }
    out["quality"] = {name: quality(ranked, data.qrels) for name, ranked in rankings.items()}
    out["service"]["same_rankings_as_baseline"] = sum(
        rankings["service"][q] == rankings["baseline"].get(q) for q in data.qrels
    )
    return out


def run_config(data: SciFact) -> dict:
    """The settings the service ran with, as the tables quote them."""
    names = "embedding_model chunk_tokens chunk_overlap_tokens embed_batch_size web_concurrency web_threads".split()
    return {
        **{name: getattr(settings, name) for name in names},
        "documents": len(data.documents), "corpus_documents": data.corpus_documents,
        "queries": len(data.queries), "judged_queries": data.judged_queries,
        "clients": CLIENT_THREADS, "worker_concurrency": WORKER_CONCURRENCY, "warmup_searches": WARMUP_QUERIES,
        "probe": {"documents": PROBE_DOCS, "searches": PROBE_SEARCHES, "gap_s": PROBE_GAP_S},
    }  # fmt: skip


def optional_phase(name: str, measure) -> dict:
    """A phase whose failure (no network for txtai, say) leaves the rest of the run standing."""
    try:
        return measure()
    except Exception as exc:  # noqa: BLE001 - recorded with the results
        traceback.print_exc()
        return {"skipped": f"the {name} phase failed: {type(exc).__name__}: {exc}"}


def run_service(data: SciFact, workdir: Path, options: dict, log: Log) -> dict:
    with service.private_service(workdir, **SERVICE_ENV) as (stack, api_key):
        stack.start_web(processes=settings.web_concurrency, threads=settings.web_threads)  # as deployed
        worker = stack.start_worker(concurrency=WORKER_CONCURRENCY)
        sampler = MemorySampler({"worker": worker.pid, "web": stack.processes[0].pid})
        try:
            service.warm_up_worker(stack)
            meter = CpuMeter(
                {"worker": worker.pid, "web": stack.processes[0].pid}, stack.redis.process.pid, split=("worker",)
            )
            out = measure_ingest(stack, data, options["ingest_timeout"], meter, log)
            out.update(measure_searches(stack, lambda: stack.client(api_key), data.queries, meter, log))
            if not options["no_load"]:
                log("load test")
                out["load"] = load.run(stack.base_url, api_key, stack.workdir, options["load_seconds"])
                service.check_alive(stack)
                meter.phase("load test")
            out["cpu_by_phase"] = meter.phases
        finally:
            out_memory = sampler.stop()
    return {**out, "memory": out_memory, "tracebacks": service.tracebacks(stack.workdir)}


def measure_ingest(stack: Stack, data: SciFact, timeout: float, meter: CpuMeter, log: Log) -> dict:
    """The probe searches on the idle service, then the whole corpus as one
    job with the same searches from the moment it runs."""
    queries, alive = cycle(text for _, text in data.queries), lambda: service.check_alive(stack)
    service.ingest_corpus(stack, "probe", data.documents[:PROBE_DOCS], None, timeout, alive)
    idle = probe_searches(stack, queries, stop=lambda: False)
    meter.phase("idle probes")
    t0 = time.perf_counter()
    jobs = service.submit_ingest(stack, "scifact", data.documents, batch=None)
    submit_s = time.perf_counter() - t0
    path = f"/api/v1/jobs/{jobs[0]['id']}"
    while stack.get(path).json()["status"] == "queued":
        alive()
        time.sleep(0.05)
    during = probe_searches(stack, queries, stop=lambda: stack.get(path).json()["status"] in TERMINAL)
    ingest = service.summarize_ingest(
        service.wait_for_jobs(stack, jobs, timeout, alive), submit_s, time.perf_counter() - t0
    )
    meter.phase("ingest")
    log(f"ingest: {ingest['chunks']} chunks, {ingest['server_chunks_per_s']:.1f} chunks/s")
    return {"ingest": ingest, "probes": {"idle": idle, "during_ingest": during}}


def probe_searches(stack: Stack, queries, stop) -> dict:
    """Up to PROBE_SEARCHES searches of the probe collection, PROBE_GAP_S apart, until stop()."""
    results, started = [], time.perf_counter()
    while len(results) < PROBE_SEARCHES and not stop():
        results.append(service.timed_search(stack, "probe", {"query": next(queries), "top_k": TOP_K}))
        time.sleep(PROBE_GAP_S)
    return service.summarize_searches(results, time.perf_counter() - started)


def measure_searches(stack: Stack, new_client, queries: list, meter: CpuMeter, log: Log) -> dict:
    """Warm-up, every query one at a time, then from CLIENT_THREADS clients at once."""

    def search(client, query: str) -> dict:
        return service.timed_search(client, "scifact", {"query": query, "top_k": TOP_K, "pipeline": "dense"})

    for _, text in queries[:WARMUP_QUERIES]:
        search(stack, text)
    service.run_concurrently(new_client, queries[:WORKER_CONCURRENCY], WORKER_CONCURRENCY, search)
    meter.phase("warm-up")
    out, rankings = {}, {}
    metrics_dir = Path(stack.env["QUARRY_VAR_DIR"]) / "metrics"
    for phase, clients in (("sequential", 1), ("concurrent", CLIENT_THREADS)):
        started, batches = time.perf_counter(), search_batches(metrics_dir)
        results = service.run_concurrently(new_client, queries, clients, search)
        out[phase] = {**service.summarize_searches(results, time.perf_counter() - started), "clients": clients}
        out[phase]["mean_batch"] = mean_batch(batches, search_batches(metrics_dir))
        rankings[phase] = {r["qid"]: document_ranking([h["document_id"] for h in r.get("hits", [])]) for r in results}
        service.check_alive(stack)
        meter.phase(phase)
        log(f"{phase}: {out[phase]['qps']:.2f} searches/s, p50 {out[phase]['latency'].get('p50', 0):.1f} ms")
    out["concurrent"]["same_rankings_as_sequential"] = sum(
        ranked == rankings["sequential"].get(qid) for qid, ranked in rankings["concurrent"].items()
    )
    return {**out, "rankings": rankings["sequential"]}
