"""The end-to-end suite's tables: the targets (each figure against the
in-process limit of the same run, the peer beside it) and the figures behind them."""

from __future__ import annotations

import numpy as np

from bench import tables
from bench.tables import fmt, met, ratio, stats, table

# What the end-to-end figures should reach, against the in-process limit of the same run.
TARGET_SEARCH_X_LIMIT, TARGET_CONCURRENT_X_LIMIT, TARGET_CONCURRENT_P50_MS = 1.5, 0.75, 150.0
TARGET_INGEST_X_LIMIT, TARGET_DURING_INGEST_X_IDLE = 0.9, 3.0
TARGET_SUBMIT_P95_MS, TARGET_MEMORY_X_BEFORE = 20.0, 0.6
# Against the peer (txtai) in the same run, with the concurrent phase's clients.
TARGET_CPU_PER_SEARCH_MS, TARGET_QPS_X_PEER, TARGET_P50_X_PEER = 20.0, 2.0, 0.5
PUBLISHED_NDCG = 0.645  # all-MiniLM-L6-v2 on BEIR SciFact (MTEB / SBERT tables)


def targets(r: dict) -> list[list]:
    """[figure, limit, peer, Quarry, Quarry ÷ limit, target, met] for each figure measured."""
    svc, base, load, memory = r["service"], r["baseline"], r["service"].get("load"), r.get("memory")
    peer = r["peer"] if "skipped" not in r.get("peer", {"skipped": ""}) else {}
    probes, clients = svc["probes"], svc["concurrent"]["clients"]
    search = svc["sequential"]["phases"]["created_to_finished"]["p50"]
    slower = ratio(probes["during_ingest"]["latency"].get("p50"), probes["idle"]["latency"].get("p50"))
    rows = [
        ["One search, created → finished, p50 (ms)", base["sequential"]["latency"]["p50"],
         peer.get("sequential", {}).get("latency", {}).get("p50"), search, f"≤ {TARGET_SEARCH_X_LIMIT}× limit",
         search <= TARGET_SEARCH_X_LIMIT * base["sequential"]["latency"]["p50"]],
        [f"{clients} concurrent clients, searches/s", base["batched_qps"], peer.get("concurrent", {}).get("qps"),
         svc["concurrent"]["qps"], f"≥ {TARGET_CONCURRENT_X_LIMIT}× limit",
         svc["concurrent"]["qps"] >= TARGET_CONCURRENT_X_LIMIT * base["batched_qps"]],
        [f"{clients} clients, client-observed p50 (ms)", None, peer.get("concurrent", {}).get("latency", {}).get("p50"),
         svc["concurrent"]["latency"].get("p50"), f"≤ {TARGET_CONCURRENT_P50_MS:g} ms",
         svc["concurrent"]["latency"].get("p50", 1e9) <= TARGET_CONCURRENT_P50_MS],
        [f"One ingest job of {svc['ingest']['documents']:,} documents, chunks/s", base["ingest"]["embed_chunks_per_s"], None,
         svc["ingest"]["server_chunks_per_s"], f"≥ {TARGET_INGEST_X_LIMIT}× limit",
         svc["ingest"]["server_chunks_per_s"] >= TARGET_INGEST_X_LIMIT * base["ingest"]["embed_chunks_per_s"]],
        ["A search during that ingest, client p50 ÷ idle (×)", None, None, slower, f"≤ {TARGET_DURING_INGEST_X_IDLE:g}×",
         None if slower is None else slower <= TARGET_DURING_INGEST_X_IDLE],
    ]  # fmt: skip
    if load and "skipped" not in load:
        rows += [[f"Search submit POST → 202, p95 at {load['users']} users (ms)", None, None, load["submit"].get("p95"),
                  f"≤ {TARGET_SUBMIT_P95_MS:g} ms", load["submit"].get("p95", 1e9) <= TARGET_SUBMIT_P95_MS],
                 [f"Load test errors ({load['users']} users, {load['seconds']} s)", None, None, load["errors"], "0",
                  load["errors"] == 0]]  # fmt: skip
    if memory and "skipped" not in memory:
        shrink = memory["preload_1"]["pss_mib"] / memory["preload_0"]["pss_mib"]
        rows.append(["Worker total PSS, model before the fork ÷ a model per pool process (×)", None, None, shrink,
                     f"≤ {TARGET_MEMORY_X_BEFORE}×", shrink <= TARGET_MEMORY_X_BEFORE])  # fmt: skip
    return [[f, lim, p, q, ratio(q, lim), t, ok] for f, lim, p, q, t, ok in rows]


def against_peer(r: dict) -> list[str]:
    """The CPU-per-search targets against txtai in this run, each with the
    bound this run's own figures put on it."""
    svc, peer = r["service"], r.get("peer") or {}
    conc, cores = svc["concurrent"], r["machine"]["cores"]
    theirs = peer.get("concurrent", {}) if "skipped" not in peer else {}
    cpu = service_cpu_per_search(svc)
    if cpu is None:
        return []
    clients_cpu = concurrent_cpu_ms(svc)["driver"]
    qps, p50 = conc["qps"], conc["latency"].get("p50")
    their_qps, their_p50 = theirs.get("qps"), theirs.get("latency", {}).get("p50")
    encode, lone = encode_ms(r), svc["sequential"]["phases"]["created_to_finished"]["p50"]
    one_query = r["baseline"].get("encode_ms_by_batch", {}).get("1")
    limit = r["baseline"]["sequential"]["latency"]["p50"]
    rows = [
        ["One search alone, created → finished p50 (ms)", peer.get("sequential", {}).get("latency", {}).get("p50"), lone,
         f"≤ {TARGET_SEARCH_X_LIMIT}× the limit's {fmt(limit)}", lone <= TARGET_SEARCH_X_LIMIT * limit,
         "" if one_query is None else f"the model's encode of one query on a pool process's one thread: {fmt(one_query)} ms,"
         f" leaving {fmt(TARGET_SEARCH_X_LIMIT * limit - one_query)} ms of the target for the queue hop, claim, search and"
         f" finish (they took {fmt(lone - one_query)})"],
        ["CPU per search, all of the service (ms)", theirs.get("cpu_ms_per_search"), cpu, f"≤ {TARGET_CPU_PER_SEARCH_MS:g} ms",
         cpu <= TARGET_CPU_PER_SEARCH_MS,
         "" if encode is None else f"the model's encode alone, batches of {fmt(conc.get('mean_batch'), 1)}: {fmt(encode, 1)} ms"],
        ["Searches/s", their_qps, qps, f"≥ {TARGET_QPS_X_PEER:g}× txtai", None if their_qps is None else qps >= TARGET_QPS_X_PEER * their_qps,
         f"{cores} cores ÷ (service + clients' {fmt(clients_cpu, 1)} ms) = {fmt(cores * 1000 / (cpu + clients_cpu))}/s at most"],
        ["Client-observed p50 (ms)", their_p50, p50, f"≤ {TARGET_P50_X_PEER:g}× txtai's",
         None if their_p50 is None or p50 is None else p50 <= TARGET_P50_X_PEER * their_p50,
         f"{conc['clients']} clients ÷ {fmt(qps)} searches/s = {fmt(1000 * conc['clients'] / qps, 0)} ms mean (closed loop)"],
    ]  # fmt: skip
    return [f"### Against txtai, {conc['clients']} clients", "",
            *table(["Figure", "txtai", "Quarry", "Target", "Met", "What bounds it in this run"],
                   [[f, fmt(t), fmt(q), target, met(ok), bound] for f, t, q, target, ok, bound in rows])]  # fmt: skip


def end_to_end(r: dict) -> list[str]:
    cfg, base = r["config"], r["baseline"]

    def times(x: float | None) -> str:
        return "" if x is None else f"{x:.2f}×"

    target_rows = [[f, fmt(lim), f"{fmt(p)} {times(ratio(p, lim))}".strip(), fmt(q, 2 if isinstance(q, float) and q < 10 else 1),
                    times(x) or "–", t, met(ok)] for f, lim, p, q, x, t, ok in targets(r)]  # fmt: skip
    return [
        *tables.run_table(r, [
            ["Data", f"SciFact, {cfg['documents']:,} of {cfg['corpus_documents']:,} documents, {cfg['queries']} of "
                     f"{cfg['judged_queries']} judged test queries"],
            ["Model; chunks (overlap); embed batch", f"{cfg['embedding_model']}; {cfg['chunk_tokens']} tokens "
                                                     f"({cfg['chunk_overlap_tokens']}); {cfg['embed_batch_size']}"],
            ["Service", f"gunicorn {cfg['web_concurrency']} × {cfg['web_threads']} threads, one worker of concurrency "
                        f"{cfg['worker_concurrency']}, SQLite, private Redis, result cache off"],
            ["Baseline torch threads; warm-up searches", f"{base['torch_threads']}; {cfg['warmup_searches']}"],
            ["Other processes' CPU per phase (share of the machine)",
             ", ".join(f"{k} {v['other_share']:.1%}" for k, v in r["other_load"].items())],
        ]),
        "### Targets", "",
        *table(["Figure", "Limit (in process)", "Peer: txtai (× limit)", "Quarry", "Quarry ÷ limit", "Target", "Met"], target_rows),
        *against_peer(r),
        *results_tables(r),
    ]  # fmt: skip


PHASES = {
    "post_to_row": "POST until the job row's `created_at`",
    "queue": "`created_at` → `started_at` (commit, Redis, Celery delivery, claim)",
    "run": "`started_at` → `finished_at` (handler, result write)",
    "notice": "`finished_at` → the client's poll sees it",
}


def results_tables(r: dict) -> list[str]:
    svc, base, q = r["service"], r["baseline"], r["quality"]
    sq, cc, ing, bi, worker = (
        svc["sequential"],
        svc["concurrent"],
        svc["ingest"],
        base["ingest"],
        svc["memory"]["worker"],
    )
    rows = [
        ["Search latency, sequential, p50 / p95 / p99 (ms)", stats(sq["latency"]), stats(base["sequential"]["latency"])],
        ["Search latency, sequential, mean (ms)", fmt(sq["latency"]["mean"]), fmt(base["sequential"]["latency"]["mean"])],
        ["Worker `took_ms` p50 / p95; baseline with 1 torch thread (ms)", stats(sq["took"], ("p50", "p95")),
         stats(base["sequential_1thread"]["latency"], ("p50", "p95"))],
        ["Searches/s, one client", fmt(sq["qps"], 2), fmt(base["sequential"]["qps"], 2)],
        [f"Searches/s, {cc['clients']} clients; baseline all queries in one batch", fmt(cc["qps"], 2), fmt(base["batched_qps"])],
        [f"Latency with {cc['clients']} clients, p50 / p95 / p99 (ms)", stats(cc["latency"]), "–"],
        ["Ingest wall time (s); baseline chunk / embed / index", fmt(ing["wall_s"]),
         f"{fmt(bi['total_s'])}; {fmt(bi['chunk_s'])} / {fmt(bi['embed_s'])} / {fmt(bi['index_s'], 2)}"],
        ["Ingest documents/s", fmt(ing["docs_per_s"]), fmt(bi["docs_per_s"])],
        ["Ingest chunks/s (chunks); baseline embedding alone", f"{fmt(ing['chunks_per_s'])} ({ing['chunks']:,})",
         f"{fmt(bi['chunks_per_s'])} ({bi['chunks']:,}); {fmt(bi['embed_chunks_per_s'])}"],
        [f"nDCG@10 / Recall@10 (published nDCG@10 {PUBLISHED_NDCG})", f"{q['service']['ndcg@10']:.4f} / {q['service']['recall@10']:.4f}",
         f"{q['baseline']['ndcg@10']:.4f} / {q['baseline']['recall@10']:.4f}"],
        ["Peak RSS (MB): worker summed (per process); peak PSS sum", f"{fmt(worker['sum_hwm_mb'], 0)} ("
         + " + ".join(fmt(x, 0) for x in worker["per_process_hwm_mb"]) + f"); {fmt(worker['peak_pss_sum_mb'], 0)}",
         fmt(base["peak_rss_mb"], 0)],
        ["Peak RSS (MB): web processes summed", fmt(svc["memory"]["web"]["sum_hwm_mb"], 0), "–"],
        ["Failed: ingest jobs; searches sequential + concurrent; retried", f"{ing['failed_jobs']}; {sq['failed']} + "
         f"{cc['failed']}; {sq['retried'] + cc['retried']}", "–"],
        ["Same rankings: concurrent as sequential; service as baseline", f"{cc['same_rankings_as_sequential']}; "
         f"{svc['same_rankings_as_baseline']} of {sq['n']}", "–"],
        ["Tracebacks in the service logs", fmt(svc["tracebacks"]), "–"],
    ]  # fmt: skip
    return ["### Service and baseline", "", *table(["", "Service (HTTP jobs)", "In-process baseline"], rows),
            *peer_table(r), *phase_table(svc), *ingest_table(svc), *load_table(svc.get("load")), *cpu_table(svc),
            *cpu_per_search_table(r)]  # fmt: skip


def concurrent_cpu_ms(svc: dict) -> dict[str, float]:
    """CPU ms per search of each process (and "driver", the benchmark's
    clients) over the concurrent phase: cores busy × wall time ÷ searches."""
    phase, searches = svc["cpu_by_phase"].get("concurrent"), svc["concurrent"]["n"]
    if not phase or not searches:
        return {}
    return {
        name: 1000 * phase[name] * phase["wall_s"] / searches for name in (*PROCESS_COLUMNS, "driver") if name in phase
    }


def service_cpu_per_search(svc: dict) -> float | None:
    per_search = concurrent_cpu_ms(svc)
    return sum(ms for name, ms in per_search.items() if name in PROCESS_COLUMNS) if per_search else None


def peer_table(r: dict) -> list[str]:
    peer, svc = r.get("peer"), r["service"]
    if not peer or "skipped" in peer:
        return ["### The peer: txtai's API", "", f"Not measured: {(peer or {}).get('skipped', '`--no-peer`')}", ""]
    pi, q = peer["ingest"], r["quality"]
    rows = [
        ["Ingest documents/s", fmt(pi["docs_per_s"]), fmt(svc["ingest"]["docs_per_s"])],
        ["Search latency, sequential, p50 / p95 / p99 (ms)", stats(peer["sequential"]["latency"]), stats(svc["sequential"]["latency"])],
        ["Searches/s, one client", fmt(peer["sequential"]["qps"], 2), fmt(svc["sequential"]["qps"], 2)],
        [f"Searches/s, {peer['concurrent']['clients']} clients", fmt(peer["concurrent"]["qps"], 2), fmt(svc["concurrent"]["qps"], 2)],
        [f"Latency with {peer['concurrent']['clients']} clients, p50 / p95 / p99 (ms)", stats(peer["concurrent"]["latency"]),
         stats(svc["concurrent"]["latency"])],
        [f"CPU per search with {peer['concurrent']['clients']} clients (ms; Quarry: every process of the service)",
         fmt(peer["concurrent"].get("cpu_ms_per_search"), 1), fmt(service_cpu_per_search(svc), 1)],
        ["nDCG@10 / Recall@10", f"{q['peer']['ndcg@10']:.4f} / {q['peer']['recall@10']:.4f}",
         f"{q['service']['ndcg@10']:.4f} / {q['service']['recall@10']:.4f}"],
        ["Peak RSS (MB)", fmt(peer["peak_rss_mb"], 0), f"worker {fmt(svc['memory']['worker']['sum_hwm_mb'], 0)} + web "
         f"{fmt(svc['memory']['web']['sum_hwm_mb'], 0)}"],
        ["Ingest: POST /add (s); GET /index (s); documents indexed", f"{fmt(pi['add_s'])}; {fmt(pi['index_s'])}; {pi['indexed']}", "–"],
        ["Failed searches, sequential + concurrent", f"{peer['sequential']['failed']} + {peer['concurrent']['failed']}", "–"],
    ]  # fmt: skip
    intro = (
        f"txtai {peer['txtai_version']}, `uvicorn txtai.api:app` with its defaults, in-memory index of whole "
        "documents (txtai does not chunk), the bundled model directory."
    )
    return ["### The peer: txtai's API", "", intro, "", *table(["", "txtai", "Quarry"], rows)]


def phase_table(svc: dict) -> list[str]:
    seq, conc, n = svc["sequential"], svc["concurrent"], svc["concurrent"]["clients"]
    rows = [
        [label, stats(seq["phases"][k], ("p50", "p95")), stats(conc["phases"][k], ("p50", "p95"))]
        for k, label in PHASES.items()
    ]
    rows.append(
        [
            "Whole search as the client sees it",
            stats(seq["latency"], ("p50", "p95")),
            stats(conc["latency"], ("p50", "p95")),
        ]
    )
    rows.append(["Polls per search (mean)", fmt(seq["polls_mean"], 2), fmt(conc["polls_mean"], 2)])
    return ["### Where a search's time goes (ms; each cell its own percentile)", "",
            *table(["Phase", "Sequential p50 / p95", f"{n} clients p50 / p95"], rows)]  # fmt: skip


def ingest_table(svc: dict) -> list[str]:
    ing, probes = svc["ingest"], svc["probes"]
    rows = [[name, p["n"], stats(p["latency"], ("p50", "p95")), stats(p["phases"]["created_to_finished"], ("p50", "p95")),
             fmt(p["took"].get("p50")), p["failed"]] for name, p in (("idle service", probes["idle"]),
                                                                    ("during the ingest", probes["during_ingest"]))]  # fmt: skip
    return [
        "### One large ingest job, and searches while it runs", "",
        *table(["Ingest job", "Value"], [
            ["Documents / chunks", f"{ing['documents']:,} / {ing['chunks']:,}"],
            ["`created_at` → `finished_at` (s); chunks/s", f"{fmt(ing['server_s'])}; {fmt(ing['server_chunks_per_s'])}"],
            ["Client wall time (s), of which the upload", f"{fmt(ing['wall_s'])}, {fmt(ing['submit_s'])}"]]),
        *table(["Probe searches (own collection, one a second)", "n", "Client p50 / p95 (ms)",
                "`created_at` → `finished_at` p50 / p95 (ms)", "`took_ms` p50", "Failed"], rows),
    ]  # fmt: skip


def load_table(load: dict | None) -> list[str]:
    if not load or "skipped" in load:
        return ["### Load test (locust)", "", f"Not measured: {(load or {}).get('skipped', '`--no-load`')}", ""]
    names = {
        "submit": "Search submit POST → 202",
        "submit_in_app": "The same submits as the app timed them",
        "poll": "Job poll GET",
        "search_job": "Search job, submit → seen final",
        "ingest_job": "Ingest job, submit → seen final",
    }
    rows = [[label, load[k]["n"], stats(load[k], digits=0), fmt(load[k].get("failures"))] for k, label in names.items()]
    return [
        "### Load test (locust)", "",
        f"`bench/locustfile.py` headless against the same service: {load['users']} users for {load['seconds']} s; "
        f"{fmt(load['requests_per_s'])} HTTP requests/s; errors {load['errors']}; locust exited {load['exit_code']}.", "",
        *table(["What", "n", "p50 / p95 / p99 (ms)", "Failures"], rows),
        *(table(["Failure"], [[f] for f in load["failures"]]) if load["failures"] else []),
    ]  # fmt: skip


# The service's processes as the cores-busy table names them (older runs: the worker whole).
PROCESS_COLUMNS = {"worker main": "Worker main", "worker pool": "Worker pool", "worker": "Worker", "web": "Web",
                   "redis": "Redis"}  # fmt: skip


def cpu_table(svc: dict) -> list[str]:
    phases = svc["cpu_by_phase"]
    processes = [name for name in PROCESS_COLUMNS if any(name in p for p in phases.values())]
    columns = (*processes, "driver", "other", "idle")
    rows = [[name, fmt(p["wall_s"]), *(fmt(p.get(c), 2) for c in columns)] for name, p in phases.items()]
    headers = ["Phase", "Wall (s)", *(PROCESS_COLUMNS[name] for name in processes), "Benchmark client",
               "Other processes", "Idle"]  # fmt: skip
    return ["### Cores busy per phase of the service run (average)", "", *table(headers, rows)]


def cpu_per_search_table(r: dict) -> list[str]:
    """CPU per search over the concurrent phase, by process: the service's
    cores busy × the phase's wall time ÷ its searches, the pool's split into
    the model's encode (as the baseline measured it at the phase's mean
    batch) and the rest; txtai's whole server beside it."""
    svc, peer = r["service"], r.get("peer") or {}
    per_search = concurrent_cpu_ms(svc)
    if not per_search:
        return []
    clients_cpu = per_search.pop("driver")
    rows = [[PROCESS_COLUMNS[name], fmt(ms, 1)] for name, ms in per_search.items()]
    batch, encode = svc["concurrent"].get("mean_batch"), encode_ms(r)
    if encode is not None and "worker pool" in per_search:
        at = list(per_search).index("worker pool") + 1
        rows[at:at] = [[f"– of which the model's encode, batches of {fmt(batch, 1)} (in process, 1 thread)", fmt(encode, 1)],
                       ["– the rest: claim, finish, FAISS, results, Celery", fmt(per_search["worker pool"] - encode, 1)]]  # fmt: skip
    rows.append(["**All of the service**", fmt(sum(per_search.values()), 1)])
    rows.append(["The benchmark's clients (not the service)", fmt(clients_cpu, 1)])
    txtai = peer.get("concurrent", {}).get("cpu_ms_per_search") if "skipped" not in peer else None
    rows = [[*row, fmt(txtai, 1) if row[0].startswith("**All") else ""] for row in rows]
    return [f"### CPU per search, {svc['concurrent']['clients']} clients (ms)", "",
            *table(["Process", "Quarry", "txtai (its server)"], rows)]  # fmt: skip


def encode_ms(r: dict) -> float | None:
    """The baseline's encode CPU per query at the concurrent phase's mean batch
    (interpolated between the measured sizes around it)."""
    by_batch = sorted((int(size), ms) for size, ms in r["baseline"].get("encode_ms_by_batch", {}).items())
    batch = r["service"]["concurrent"].get("mean_batch")
    if not by_batch or batch is None:
        return None
    sizes, costs = zip(*by_batch)
    return float(np.interp(batch, sizes, costs))
