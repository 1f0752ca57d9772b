"""The report's interpretation: one paragraph each on latency, throughput,
ingest, quality and memory, written from a run's numbers so the text always
matches the tables."""

from __future__ import annotations

from bench.parameters import PUBLISHED_NDCG, SEARCH_POLL_INTERVAL, TOP_K
from bench.report import fmt

POLL_MS = f"{SEARCH_POLL_INTERVAL * 1000:.0f}"


def interpret(results: dict) -> list[str]:
    return [
        latency_paragraph(results),
        throughput_paragraph(results),
        ingest_paragraph(results),
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
        f"less in the worker can move the median by a whole cycle between runs. The hint is the recent median "
        f"submit-to-success time of searches (before any search finished: {cfg['search_poll_after_ms']} ms), so a "
        f"client that honours it polls about once or twice per search."
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
        f"web process, the {cc['clients']} pollers (each polling when its job's hint says) and SQLite "
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
        f"process {fmt(cpu['web_cores'], 2)}, the benchmark's own client threads "
        f"{fmt(cpu['driver_cores'], 2)} and Redis {fmt(cpu['redis_cores'], 2)} "
        f"({fmt(cpu['idle_cores'], 2)} idle of {results['machine']['nproc']}), so the HTTP side "
        f"(web + clients) took {fmt(http_share * 100, 0)}% of the CPU the service run used. "
    )


def ingest_paragraph(results: dict) -> str:
    svc, cfg = results["service"], results["config"]
    ing, bing = svc["ingest"], results["baseline"]["ingest"]
    ratio = ing["docs_per_s"] / bing["docs_per_s"] if bing["docs_per_s"] else float("nan")
    batch = cfg["docs_per_checkpoint"]
    return (
        f"**Ingest.** The service ingested {ing['documents']} documents ({ing['chunks']} chunks) in "
        f"{fmt(ing['wall_s'])} s, {fmt(ing['docs_per_s'])} docs/s; the baseline chunks, embeds and indexes the "
        f"same corpus in {fmt(bing['total_s'])} s ({fmt(bing['docs_per_s'])} docs/s), so the service runs at "
        f"{fmt(ratio * 100, 0)}% of it. Embedding dominates both; next to it the service's extra work costs "
        f"little: it embeds {batch} documents' chunks per encode call (DOCS_PER_CHECKPOINT) rather than the whole "
        f"corpus sorted by length, writes every chunk row with its vector to SQL, checkpoints the job row after "
        f"every {batch} documents, and at the end of each of the {ing['requests']} jobs re-reads the collection's "
        f"chunk ids and new vectors and writes a new FAISS generation file. With {ing['requests']} jobs queued "
        f"at once the two worker children embed in parallel, one torch thread each (the worker kept "
        f"{fmt(svc['cpu_by_phase']['ingest']['worker_cores'], 2)} cores busy during the ingest); an ingest job "
        f"that is the only one embedding on the host takes every core instead (this run does not measure that "
        f"case). Worker-side job durations (claim → finish): "
        f"{', '.join(fmt(s, 1) for s in ing['job_seconds'])} s."
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
