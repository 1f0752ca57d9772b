"""The report's interpretation: one paragraph each on latency, throughput,
ingest, quality and memory, written from a run's numbers so the text always
matches the tables."""

from __future__ import annotations

from bench.client import server_chunks_per_s
from bench.parameters import (
    PUBLISHED_NDCG,
    SEARCH_POLL_INTERVAL,
    TARGET_CONCURRENT_P50_MS,
    TARGET_CONCURRENT_X_LIMIT,
    TARGET_SEARCH_X_LIMIT,
    TOP_K,
)
from bench.report import fmt
from bench.sections import failures_words
from bench.targets import ran

POLL_MS = f"{SEARCH_POLL_INTERVAL * 1000:.0f}"


def interpret(results: dict) -> list[str]:
    return [
        latency_paragraph(results),
        throughput_paragraph(results),
        ingest_paragraph(results),
        targets_paragraph(results),
        load_paragraph(results),
        quality_paragraph(results),
        memory_paragraph(results),
    ]


def latency_paragraph(results: dict) -> str:
    svc, base, cfg = results["service"], results["baseline"], results["config"]
    sq, b1 = svc["sequential"], base["sequential_1thread"]
    ph = sq["phases"]
    overhead = sq["latency"]["p50"] - sq["took"]["p50"]
    return (
        f"**Latency.** Inside the worker a search takes {fmt(sq['took']['p50'])} ms (p50 of `took_ms`: the "
        f"collection lookup, query encoding, FAISS, hydrating the hits from SQL) against "
        f"{fmt(b1['latency']['p50'])} ms for encode + search in process with one torch thread, which is what each "
        f"worker child gets ({fmt(base['sequential']['latency']['p50'])} ms with two). The client sees "
        f"{fmt(sq['latency']['p50'])} ms, so about {fmt(overhead)} ms of the median is job-service overhead "
        f"outside the handler: the POST until the job row exists ({fmt(ph['post_to_row']['p50'])} ms; every "
        f"request also checks its API key (from memory for up to a second) and counts against the rate limit in "
        f"Redis), commit, "
        f"enqueue to Redis, Celery delivery and the claim UPDATE ({fmt(ph['queue']['p50'])} ms), the job row's "
        f"claim → finish ({fmt(ph['run']['p50'])} ms, of which `took_ms` is the handler and the rest the claim "
        f"bookkeeping and the result write), and waiting for the client's next poll ({fmt(ph['notice']['p50'])} ms: "
        f"the client polls when the job's `poll_after_ms` hint says, at least {POLL_MS} ms apart, sending its ETag; "
        f"{fmt(sq['polls_mean'], 2)} polls per search). The client only learns of a result at a poll, so latency "
        f"moves in steps of one poll cycle (the sleep plus a GET): a search that finishes just after a poll is "
        f"seen one cycle later. That is why p50 and p95 sit close together, and why a few milliseconds more or "
        f"less in the worker can move the median by a whole cycle between runs. The hint is what is left of the "
        f"recent median submit-to-success time of searches (before any search finished: "
        f"{cfg['search_poll_after_ms']} ms), or half the job's age once it is older than that, so a client that "
        f"honours it polls a search about once or twice, and a slow one a few times."
    )


def throughput_paragraph(results: dict) -> str:
    svc, base = results["service"], results["baseline"]
    sq, cc = svc["sequential"], svc["concurrent"]
    return (
        f"**Throughput.** One client gets {fmt(sq['qps'], 2)} searches/s from the service against "
        f"{fmt(base['sequential']['qps'], 2)}/s in process. With {cc['clients']} clients the service reaches "
        f"{fmt(cc['qps'], 2)}/s"
        + (", hardly more than one client gets" if cc["qps"] < 1.25 * sq["qps"] else "")
        + f"; p50 latency rises to {fmt(cc['latency']['p50'])} ms, of which queue wait is "
        f"{fmt(cc['phases']['queue']['p50'])} ms (p50) — two worker children serve {cc['clients']} clients, and the "
        f"web processes, the {cc['clients']} pollers (each polling when its job's hint says) and SQLite "
        f"share the same two cores with them. "
        + concurrent_cpu_sentence(results)
        # How the current tree uses SQLite (app/extensions.py, Database.reads_only).
        + "GET requests read SQLite with a deferred BEGIN, so the polls do not wait for the write lock; "
        "job-row inserts, claims, checkpoints and results still take it one at a time. "
        f"Batching queries (the pipeline supports it) is far cheaper: "
        f"{fmt(base['batched_qps'], 0)} queries/s in process when encoded together."
    )


def concurrent_cpu_sentence(results: dict) -> str:
    cpu = results["service"]["cpu_by_phase"]["concurrent"]
    used = sum(cpu[k] for k in ("worker_cores", "web_cores", "driver_cores", "redis_cores"))
    http_share = (cpu["web_cores"] + cpu["driver_cores"]) / used if used else float("nan")
    return (
        f"During the concurrent phase the worker kept {fmt(cpu['worker_cores'], 2)} cores busy, the web "
        f"processes {fmt(cpu['web_cores'], 2)}, the benchmark's own client threads "
        f"{fmt(cpu['driver_cores'], 2)} and Redis {fmt(cpu['redis_cores'], 2)} "
        f"({fmt(cpu['idle_cores'], 2)} idle of {results['machine']['nproc']}), so the HTTP side "
        f"(web + clients) took {fmt(http_share * 100, 0)}% of the CPU the service run used. "
    )


def ingest_paragraph(results: dict) -> str:
    svc, base = results["service"], results["baseline"]
    ing, bing = svc["ingest"], base["ingest"]
    if ing["requests"] != 1:  # results from before make bench ingested one job
        return f"**Ingest.** {ing['documents']} documents in {ing['requests']} jobs: {fmt(ing['chunks_per_s'])} chunks/s."
    rate = server_chunks_per_s(ing)
    during = svc.get("search_during_ingest") or {}
    slower = (
        f" A search sent while it ran took {fmt(during['during']['latency'].get('p50'))} ms (client p50) against "
        f"{fmt(during['idle']['latency'].get('p50'))} ms on the idle service: the search goes to the other pool "
        f"process, which has its own torch thread, while the ingest holds both cores' worth of threads, so for "
        f"the few milliseconds of a search three threads share two cores."
        if during
        else ""
    )
    return (
        f"**Ingest.** One job of {ing['documents']:,} documents ({ing['chunks']:,} chunks) took "
        f"{fmt(ing['server_wall_s'])} s from `created_at` to `finished_at`: {fmt(rate)} chunks/s, "
        f"{fmt(100 * rate / bing['embed_chunks_per_s'], 0)}% of the in-process encode of the same chunks "
        f"({fmt(bing['embed_chunks_per_s'])} chunks/s with {base['torch_threads']} torch threads, one call sorted "
        f"by length). It is the only ingest on the host, so its pool process gives torch every core: the worker "
        f"kept {fmt(svc['cpu_by_phase']['ingest']['worker_cores'], 2)} cores busy, so the gap is not idle cores "
        f"but work per chunk. Besides the encode (in a forked pool process, "
        f"{results['config']['docs_per_checkpoint']} documents' chunks per call, so the job can checkpoint and be "
        f"cancelled), the service writes every chunk row with its vector to SQL, checkpoints the job row and at "
        f"the end writes a new FAISS generation file." + slower
    )


def targets_paragraph(results: dict) -> str:
    """Why the search targets are where they are, from this run's own numbers."""
    svc, base = results["service"], results["baseline"]
    sq, cc = svc["sequential"], svc["concurrent"]
    limit = base["sequential"]["latency"]["p50"]
    machinery = sq["phases"]["queue"]["p50"] + sq["phases"]["run"]["p50"] - sq["took"]["p50"]
    cpu = svc["cpu_by_phase"]["concurrent"]
    searches = cc["qps"] * cpu["wall_s"]
    if not searches or not sq["took"].get("p50"):
        return "**What the targets ask.** Not explained for this run: too few searches succeeded."
    web_ms, worker_ms = (1000 * cpu[k] * cpu["wall_s"] / searches for k in ("web_cores", "worker_cores"))
    wanted_qps = TARGET_CONCURRENT_X_LIMIT * base["batched_qps"]
    nproc = results["machine"]["nproc"]
    return (
        f"**What the targets ask, against what this run measured.** One search's created → finished may take "
        f"{fmt(TARGET_SEARCH_X_LIMIT * limit)} ms ({TARGET_SEARCH_X_LIMIT:g}× the limit of {fmt(limit)} ms, which "
        f"encodes back to back on both cores). The job machinery around the handler alone took {fmt(machinery)} ms "
        f"of the median (commit, Redis, Celery's delivery to a pool process and the claim: "
        f"{fmt(sq['phases']['queue']['p50'])} ms; the finish write after `took_ms`: "
        f"{fmt(sq['phases']['run']['p50'] - sq['took']['p50'])} ms), and the handler's own "
        f"{fmt(sq['took']['p50'])} ms runs on one torch thread after the worker sat idle while the client polled "
        f"(the baseline's one-thread figure back to back: {fmt(base['sequential_1thread']['latency']['p50'])} ms). "
        f"With {cc['clients']} clients each search cost the web processes {fmt(web_ms)} ms of CPU (the submit and "
        f"{fmt(cc['polls_mean'], 2)} polls, each through Flask, flask-smorest, the limiter's Redis round trips "
        f"and SQL) and the worker {fmt(worker_ms)} ms. {fmt(wanted_qps, 0)} searches/s "
        f"({TARGET_CONCURRENT_X_LIMIT:g}× the batched limit) would need {fmt(wanted_qps * (web_ms + worker_ms) / 1000, 1)} cores at those "
        f"costs, of the machine's {nproc}; the web's share alone would need "
        f"{fmt(wanted_qps * web_ms / 1000, 1)}. And {cc['clients']} closed-loop clients at {fmt(cc['qps'])} "
        f"searches/s wait {fmt(1000 * cc['clients'] / cc['qps'], 0)} ms per search on average (Little's law), "
        f"so a p50 of {TARGET_CONCURRENT_P50_MS:g} ms needs about "
        f"{fmt(1000 * cc['clients'] / TARGET_CONCURRENT_P50_MS, 0)} searches/s first."
    )


def web_ms_per_request(results: dict) -> float:
    """Web CPU per HTTP request of the sequential phase: one submit and its polls per search."""
    sq, cpu = results["service"]["sequential"], results["service"]["cpu_by_phase"]["sequential"]
    requests = sq["qps"] * cpu["wall_s"] * (1 + sq["polls_mean"])
    return 1000 * cpu["web_cores"] * cpu["wall_s"] / requests if requests else float("nan")


def load_paragraph(results: dict) -> str:
    load = results["service"].get("load")
    if not ran(load) or not load["submit"]:
        return "**Load test.** Not measured in this run."
    cpu = results["service"]["cpu_by_phase"].get("load test", {})
    in_app = load.get("submit_in_app") or {}  # older results lack it
    return (
        f"**Load test.** At {load['users']} users the search submit's p95 was {fmt(load['submit']['p95'], 0)} ms "
        f"as locust saw it and {fmt(in_app.get('p95'), 0)} ms inside the app (p50 {fmt(load['submit']['p50'], 0)} "
        f"and {fmt(in_app.get('p50'), 0)} ms); the difference is time in gunicorn's queue and in locust's own "
        f"event loop, which shares the two cores. In the sequential phase a request (submit or poll) cost the "
        f"web {fmt(web_ms_per_request(results))} ms of CPU on average (for a submit: flask-smorest's argument and "
        f"response schemas, the limiter's Redis round trips, the key's in-flight count, the job row's insert and "
        f"commit, the broker message); a submit's p95 under load is its own cost plus waiting "
        f"for the GIL and a core while the worker encodes (it kept {fmt(cpu.get('worker_cores'), 2)} cores busy "
        f"during the load test, the web {fmt(cpu.get('web_cores'), 2)}). Errors: {load['errors']}"
        + (f": {failures_words(load['failures'])}" if load.get("failures") else "")
        + "."
    )


def quality_paragraph(results: dict) -> str:
    qs, qb, cfg = results["quality"]["service"], results["quality"]["baseline"], results["config"]
    diff = qs["ndcg@10"] - qb["ndcg@10"]
    subset = cfg["docs"] != cfg["corpus_docs"]
    return (
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
            f"**This is not comparable**: the run searched {cfg['docs']} of the {cfg['corpus_docs']} documents "
            f"(every judged document of the queries plus the first others), so there are fewer distractors and "
            f"the score is higher than on the whole corpus. Other differences"
            if subset
            else "Differences"
        )
        + f" from the published setup: documents are split into {cfg['chunk_tokens']}-token chunks and ranked by "
        f"their best chunk (the published number embeds each whole abstract, truncated at 256 word pieces), title "
        f"and abstract are joined with \". \" instead of a space, and only {TOP_K} chunks are retrieved, so a "
        f"query whose top chunks come from fewer documents ranks fewer than {TOP_K} documents."
    )


def memory_paragraph(results: dict) -> str:
    mem, base = results["service"]["memory"]["worker"], results["baseline"]
    return (
        f"**Memory.** The worker (Celery parent + {mem['processes'] - 1} prefork children) peaked at "
        f"{fmt(mem['sum_hwm_mb'], 0)} MB summed RSS ({fmt(mem['peak_pss_sum_mb'], 0)} MB PSS, which counts pages "
        f"shared after fork once): the model is loaded once, before the pool forks, and shared; each child "
        f"holds its own copy of the collection's index and what its searches allocate. The "
        f"baseline process peaked at {fmt(base['memory']['peak_rss_mb'], 0)} MB holding one model, all vectors and "
        f"the whole corpus in memory."
    )
