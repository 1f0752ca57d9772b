"""Markdown tables from the results file: the helpers, and the tables of the
suites that stand alone (webhooks, hnsw, scale, memory, eval)."""

from __future__ import annotations

import math

MIB = "MiB"


def fmt(x, digits: int = 1) -> str:
    if x is None or (isinstance(x, float) and math.isnan(x)):
        return "–"
    if isinstance(x, int) and not isinstance(x, bool):
        return f"{x:,}"
    return f"{x:,.{digits}f}" if isinstance(x, float) else str(x)


def stats(s: dict | None, keys=("p50", "p95", "p99"), digits: int = 1) -> str:
    """Percentiles as "p50 / p95 / p99"."""
    return " / ".join(fmt((s or {}).get(k), digits) for k in keys)


def ratio(a, b) -> float | None:
    return a / b if a is not None and b else None


def table(header: list[str], rows: list[list]) -> list[str]:
    return [
        "| " + " | ".join(header) + " |",
        "|" + "---|" * len(header),
        *("| " + " | ".join(c if isinstance(c, str) else fmt(c) for c in row) + " |" for row in rows),
        "",
    ]


def run_rows(entry: dict) -> list[list]:
    """When, where and on what code a suite was measured, with its options."""
    m = entry["machine"]
    return [
        ["Measured", f"{entry['measured_at']} (took {entry['took_s'] / 60:.1f} min)"],
        [
            "Machine",
            f"{m['cores']} cores ({m['cpu_model']}), {m['ram_gb']} GB RAM, Linux {m['kernel']}, Python {m['python']}",
        ],
        ["Load average at start", " ".join(m["load_average_at_start"])],
        ["Code", f"commit {m['code']}"],
        ["Versions", ", ".join(f"{k} {v}" for k, v in m["versions"].items())],
        ["Options", ", ".join(f"{k} {v}" for k, v in entry["options"].items() if v not in (None, False)) or "defaults"],
    ]


def run_table(entry: dict, extra: list[list] = ()) -> list[str]:
    return table(["Run", ""], [*run_rows(entry), *extra])


def webhooks(r: dict) -> list[str]:
    delay, pings = r["delay"], r["throughput"]
    return [
        *run_table(r, [["First attempt after the event (s)", fmt(r["first_attempt_s"], 0)]]),
        *table(["Figure", "Value"], [
            ["Job finished → webhook first attempt, p50 / p95 / max (ms)", stats(delay["delay_ms"], ("p50", "p95", "max"))],
            ["Searches timed (jobs not succeeded)", f"{delay['searches']} ({delay['failed_jobs']})"],
            ["Deliveries/s at the receiver (pings)", fmt(pings["deliveries_per_s"])],
            ["Pings sent / accepted / arrived / unique webhook-ids",
             " / ".join(str(pings[k]) for k in ("sent", "accepted", "arrived", "unique"))],
            [f"POSTs accepted/s ({pings['clients']} client threads)", fmt(pings["posts_per_s"])],
            ["First POST → last arrival (s)", fmt(pings["first_post_to_last_arrival_s"], 2)],
        ]),
    ]  # fmt: skip


def request_cpu(r: dict) -> list[str]:
    kinds = {"submit": "Search submit (202)", "poll_200": "Poll of a finished job (200)",
             "poll_304": "Conditional poll of it (304)",
             "poll_429": "Poll by a key past its rate limit (429; each held about a second, idle CPU taken off)"}  # fmt: skip
    return [
        *run_table(r, [["Requests of each kind, one client, keep-alive", f"{r['requests_per_kind']} (refused: "
                        f"{r.get('refused_polls', r['requests_per_kind'])})"]]),
        *table(["Request", "Web CPU (ms)", "Redis CPU (ms)", "Wall (ms)"], [
            [label, fmt(f["web_cpu_ms"], 2), fmt(f["redis_cpu_ms"], 2), fmt(f["wall_ms"], 1)]
            for kind, label in kinds.items() if (f := r["cpu_per_request"].get(kind))
        ]),
    ]  # fmt: skip


def hnsw(r: dict) -> list[str]:
    b, p, t = r["build"], r["params"], r["truth"]
    rows = [[ef + (" (configured)" if ef == str(p["ef_search"]) else ""),
             *(cell for q in row.values() for cell in (f"{stats(q, digits=2)} ({fmt(q['cpu_p95'], 2)})",
                                                       f"{fmt(q['recall'], 3)} ({fmt(q['top1_found'], 3)})"))]
            for ef, row in r["sweep"].items()]  # fmt: skip
    return [
        *run_table(r, [["Other processes while queries were timed", f"{r['other_share']:.0%} of the machine"]]),
        *table(["Build", "Value"], [
            ["Vectors (requested)", f"{b['n']:,} ({r['vectors']:,}), 384-d, seed {r['seed']}"],
            ["HNSW M / efConstruction / efSearch", f"{p['m']} / {p['ef_construction']} / {p['ef_search']}"],
            ["Build time (s); vectors/s", f"{fmt(b['build_s'])}; {fmt(b['per_s'], 0)}"],
            ["RSS growth (bytes/vector; MB)", f"{fmt(b['rss_per_vector'], 0)}; {fmt(b['rss_growth_mb'], 0)}"],
            ["Serialized index (bytes/vector; raw vectors 1,536)", fmt(b["serialized_per_vector"], 0)],
            ["Random queries: exact best / 10th score", f"{t['random']['top1_score']:.3f} / {t['random']['top10_score']:.3f}"],
            [f"Near-duplicates (noise {r['noise']}): cosine to source; exact 10th score",
             f"{t['near']['cosine_to_source']:.3f}; {t['near']['top10_score']:.3f}"],
        ]),
        *table(["efSearch", "Random: p50 / p95 / p99 (CPU p95), ms", "Random: recall@10 (best found)",
                "Near-duplicate: p50 / p95 / p99 (CPU p95), ms", "Near-duplicate: recall@10 (best found)"], rows),
    ]  # fmt: skip


def scale(r: dict) -> list[str]:
    s, cpu = r["searches"], r["cpu"]
    rows = [[label, kind, f"{x['n']}", stats(x["took"], ("p50", "p95")), stats(x["latency"], ("p50", "p95")),
             fmt(x.get("recall_vs_flat"), 3), f"{fmt(x['first_score'], 3)} / {fmt(x['last_score'], 3)}", x["failed"], x["cached"]]
            for label, kinds in s.items() for kind, x in kinds.items()]  # fmt: skip
    return [
        *run_table(r, [
            ["Chunks per collection (documents)", ", ".join(f"{k} {c['chunks']:,} ({c['documents']:,})" for k, c in r["collections"].items())],
            ["hnsw M / efConstruction / efSearch", " / ".join(str(v) for v in r["hnsw"].values())],
            ["Rows written directly (s)", ", ".join(f"{k} {fmt(v)}" for k, v in r["write_s"].items())],
            ["`index rebuild` (s; empty = the CLI's fixed cost)", ", ".join(f"{k} {fmt(v)}" for k, v in r["rebuild_s"].items())],
            ["Worker PSS before / after the searches (MB)", f"{fmt(r['worker_pss_before_mb'], 0)} / {fmt(r['worker_pss_after_mb'], 0)}"],
            ["Cores busy while searching: worker / web / client / other",
             " / ".join(fmt(cpu[k], 2) for k in ("worker", "web", "driver", "other"))],
            ["Tracebacks in the service logs", fmt(r["tracebacks"])],
        ]),
        *table(["Search", "Index", "n", "`took_ms` p50 / p95", "Client p50 / p95 (ms)", "Recall@10 vs flat",
                "Mean 1st / 10th score", "Failed", "From cache"], rows),
    ]  # fmt: skip


def memory(r: dict) -> list[str]:
    ways = {"preload_0": "each pool process loads its own model", "preload_1": "model loaded before the fork (default)"}
    rows = [[name, x["processes"], fmt(x["pss_mib"], 0), fmt(x["rss_mib"], 0), " / ".join(fmt(u, 0) for u in x["uss_mib"]),
             "; ".join(", ".join(f"{n} {fmt(s, 0)}" for n, s in parts) for parts in x["largest_own_mib"])]
            for key, name in ways.items() if (x := r[key])]  # fmt: skip
    return [
        *run_table(r),
        f"One worker (concurrency {r['concurrency']}) ingests {r['documents']} documents and runs {r['searches']} searches;"
        " then its processes' memory is summed, each way in turn.",
        "",
        *table(["Worker", "Processes", "Total PSS (MiB)", "Total RSS (MiB)", "USS per process, main / pool (MiB)",
                "Largest own mappings per process (MiB)"], rows),
    ]  # fmt: skip


def quality(r: dict, targets: dict[str, float]) -> list[str]:
    rows = [[f"`{name}`", fmt(p["service"]["ndcg@10"], 4), fmt(p["inprocess"]["ndcg@10"], 4),
             fmt(p["service"]["recall@100"], 4), fmt(p["inprocess"]["recall@100"], 4), f"≥ {targets.get(name, '–')}",
             met(p["service"]["ndcg@10"] >= targets[name]) if name in targets else "–"]
            for name, p in r["pipelines"].items()]  # fmt: skip
    agree = [[f"`{name}`", f"{p['same_top10']}/{r['queries']}", f"{p['same_top100']}/{r['queries']}",
              p["queries_scoring_differently"], fmt(p["largest_difference"], 4), p["failed"], p["repeated_documents"]]
             for name, p in r["pipelines"].items()]  # fmt: skip
    return [
        *run_table(r, [
            ["Data", f"SciFact, {r['documents']:,} of {r['corpus_documents']:,} documents, {r['queries']} of {r['judged_queries']} judged test queries"],
            ["Chunks: service / in process", f"{r['service']['chunks']:,} / {r['inprocess']['chunks']:,}"],
            ["Hybrid: RRF k; first-stage depth", f"{r['rrf_k']}; max({r['first_stage_depth']}, requested)"],
            ["Aim: nDCG@10 ≥ 0.70 through the service", ", ".join(f"`{n}`" for n, p in r["pipelines"].items() if p["service"]["ndcg@10"] >= 0.7) or "not reached"],
            ["Pipelines not evaluated", "; ".join(f"`{k}`: {v}" for k, v in r["service"]["unavailable"].items()) or "none"],
        ]),
        *table(["Pipeline", "nDCG@10 service", "nDCG@10 in process", "Recall@100 service", "Recall@100 in process",
                "Target nDCG@10", "Met"], rows),
        *table(["Pipeline", "Same top 10", "Same top 100", "Queries scoring differently", "Largest difference",
                "Failed searches", "Rankings repeating a document"], agree),
    ]  # fmt: skip


def met(ok: bool | None) -> str:
    return {True: "yes", False: "**no**", None: "–"}[ok]


# The users' throughput beside naive clients, as a share of theirs alone.
FAIRNESS_KEPT_THROUGHPUT = 0.8


def fairness(r: dict) -> list[str]:
    alone, crowded = r["alone"], r["with_naive"]
    naive = {
        "naive_poll": "10 ms poller: polls",
        "naive_conditional_poll": "10 ms poller with If-None-Match: polls",
        "naive_submit": "tight-loop submitter: submits",
    }
    slower = ", ".join(f"{p} {v:+.0%}" for p, v in r["slowdown"].items())
    kept = ratio(crowded.get("search_job", {}).get("n"), alone.get("search_job", {}).get("n"))
    return [
        *run_table(r, [["Load test, each run", f"{alone.get('users')} users, {r['seconds']} s"],
                       ["Users' search jobs with the naive clients", f"{slower} (target ≤ {r['target_slowdown']:+.0%})"],
                       ["Users' search jobs done with the naive clients ÷ alone",
                        f"{fmt(kept, 2)}× (target ≥ {FAIRNESS_KEPT_THROUGHPUT:g}×)"]]),
        *table(["Users' figures", "Alone", "With the naive clients"], [
            ["Search job submit → result p50 / p95 / p99 (ms)", stats(alone.get("search_job")), stats(crowded.get("search_job"))],
            ["The same in the service, created → finished p50 / p95 / p99 (ms)",
             stats(alone.get("search_job_in_service")), stats(crowded.get("search_job_in_service"))],
            ["Search jobs", fmt(alone.get("search_job", {}).get("n")), fmt(crowded.get("search_job", {}).get("n"))],
            ["Search submit POST → 202 p50 / p95 / p99 (ms)", stats(alone.get("submit")), stats(crowded.get("submit"))],
            ["Errors", fmt(alone.get("errors")), fmt(crowded.get("errors"))],
            *[[f"CPU of the {name}, setup included (core-seconds)", fmt(alone.get("cpu_s", {}).get(name)),
               fmt(crowded.get("cpu_s", {}).get(name))] for name in ("web", "worker", "redis", "locust")],
        ]),
        *table(["Naive client (free tier)", "Requests", "Refused (429)"], [
            [label, fmt(row.get("n")), fmt(row.get("failures"))] for key, label in naive.items() if (row := crowded.get(key))
        ]),
    ]  # fmt: skip


def index_cache(r: dict) -> list[str]:
    phases = (("build", "First search of each collection (builds its indexes from SQL)", r["collections"]),
              ("cold", "Round-robin over all: each search reads its index files", r["collections"]),
              ("warm", "Round-robin over those that fit: indexes in memory", r["warm_collections"]))  # fmt: skip
    rows = [[label, n, r[key]["n"], r[key]["failed"], fmt(r[key]["qps"]), stats(r[key].get("took"), ("p50", "p95")),
             stats(r[key]["latency"], ("p50", "p95")), fmt(r[key]["child_rss_mb"], 0)]
            for key, label, n in phases]  # fmt: skip
    return [
        *run_table(r, [
            ["Collections × chunks", f"{r['collections']} × {r['chunks']:,}"],
            ["INDEX_CACHE_MB per worker process (one collection's indexes)", f"{r['budget_mb']} ({fmt(r['index_mb'])} MB)"],
            ["Worker pool processes / clients", f"{r['worker_concurrency']} / {r['clients']}"],
            ["Largest pool process RSS after searching an empty collection (MB)", fmt(r["model_only_child_rss_mb"], 0)],
            ["Tracebacks in the service logs", fmt(r["tracebacks"])],
        ]),
        *table(["Phase", "Collections", "Searches", "Failed", "Searches/s", "`took_ms` p50 / p95",
                "Client p50 / p95 (ms)", "Largest pool process RSS after (MB)"], rows),
    ]  # fmt: skip


def cluster(r: dict) -> list[str]:
    phases = (
        ("one_host", "one worker host"),
        ("two_hosts", "two worker hosts"),
        ("two_hosts_one_thread", "two worker hosts, one torch thread each"),
    )
    roles = ("worker1", "worker2", "web", "beat")
    rows = [[label, r[key]["n"], r[key]["failed"], fmt(r[key]["qps"]), stats(r[key].get("took"), ("p50", "p95")),
             stats(r[key]["latency"], ("p50", "p95")),
             *(fmt(r[key]["cpu_ms_per_search"].get(role), 1) for role in roles),
             fmt(sum(r[key]["cpu_ms_per_search"].values()), 1),
             " / ".join(fmt(r[key].get("mean_batch", {}).get(role), 2) for role in roles[:2])]
            for key, label in phases if key in r]  # fmt: skip
    return [
        *run_table(r, [["Collection (chunks) / clients / seconds per phase", f"{r['chunks']:,} / {r['clients']} / {r['seconds']:g}"]]),
        *table(["Served by", "Searches", "Failed", "Searches/s", "`took_ms` p50 / p95", "Client p50 / p95 (ms)",
                "CPU ms per search: worker1", "worker2", "web", "beat", "all hosts",
                "Searches per batch: worker1 / worker2"], rows),
    ]  # fmt: skip
