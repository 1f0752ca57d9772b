"""docs/benchmarks.md from a run's results, and the summary printed at the
end of a run. The interpretation paragraphs are bench/interpretation.py."""

from __future__ import annotations

import re
from pathlib import Path

from bench.formatting import fmt
from bench.parameters import (
    BENCH_TIER,
    PUBLISHED_NDCG,
    SEARCH_POLL_INTERVAL,
    TOP_K,
    WARMUP_QUERIES,
    WORKER_CONCURRENCY,
)
from bench.sections import ingest_section, load_section
from bench.system import code_words
from bench.targets import peer_section, ran, targets, targets_section

SEARCH_PHASE_LABELS = {
    "post_to_row": "POST until the job row's `created_at`",
    "queue": "`created_at` → `started_at` (commit, Redis, Celery delivery, claim)",
    "run": "`started_at` → `finished_at` (handler incl. `took_ms`, result write)",
    "notice": "`finished_at` → client sees it (poll interval + GET)",
}


def render(results: dict) -> str:
    """The whole report; `results["interpretation"]` holds its paragraphs."""
    sections = [
        ["# Benchmarks", ""],
        setup_section(results),
        targets_section(results),
        results_section(results),
        peer_section(results),
        search_phase_section(results["service"]),
        ingest_section(results),
        load_section(results["service"]),
        cpu_section(results["service"]["cpu_by_phase"]),
        ["## Interpretation", "", *(line for para in results["interpretation"] for line in (para, ""))],
        reproduce_section(),
    ]
    return "\n".join(line for section in sections for line in section)


def setup_section(results: dict) -> list[str]:
    m, cfg, cpu = results["machine"], results["config"], results["cpu"]
    svc_ingest = results["service"]["ingest"]
    full = cfg["docs"] == cfg["corpus_docs"] and cfg["queries"] == cfg["qrels_queries"]
    code = code_words(m)
    return [
        "Quarry end to end (HTTP → SQL job row → Redis → Celery worker → sentence-transformers + FAISS → "
        "job row → client poll) against the same search core called in one Python process, on BEIR SciFact. "
        "Produced by `make bench` (`.venv/bin/python bench/run.py`); every number below comes from one run.",
        "",
        f"- Date: {results['date']} (run took {results['total_s'] / 60:.1f} min)",
        f"- Machine: {m['nproc']} CPUs ({m['cpu_model']}), {m['ram_gb']:.1f} GB RAM, Linux {m['kernel']}, "
        f"Python {m['python']}; load average at start {' '.join(m['loadavg_at_start'])}",
        f"- Code: {code}; the API took an API key (one made for the run, tier `{BENCH_TIER}` with its rate "
        "limit raised so the limiter never refused the benchmark)",
        "- Versions: " + ", ".join(f"{k} {val}" for k, val in m["versions"].items()),
        f"- Data: SciFact (BEIR), {cfg['docs']} of {cfg['corpus_docs']} documents, {cfg['queries']} of "
        f"{cfg['qrels_queries']} test queries{'' if full else ' (**subset run**)'}; "
        "document text = title + \". \" + abstract",
        f"- Settings: model {cfg['model']}, chunks of {cfg['chunk_tokens']} tokens with "
        f"{cfg['chunk_overlap_tokens']} overlap, embed batch {cfg['embed_batch_size']}, pipeline `dense`, "
        f"top_k {TOP_K}, exact inner product (FAISS IndexFlatIP)",
        f"- Service: SQLite (WAL) in a temp dir, private redis-server, gunicorn {cfg.get('web', '1 process × 4 threads')}, "
        f"ONE Celery worker with concurrency {WORKER_CONCURRENCY} (each child's torch gets 1 thread, or both cores "
        f"while nothing else on the host is embedding); the search result cache off "
        f"(`SEARCH_CACHE_TTL_SECONDS=0`: every search is computed); {ingest_words(svc_ingest)} as JSON, "
        f"polled every {cfg['ingest_poll_s']:g} s; the "
        f"client polls `GET /api/v1/jobs/{{id}}` when the last answer's `poll_after_ms` says (at least "
        f"{SEARCH_POLL_INTERVAL * 1000:.0f} ms apart), sending its ETag; "
        f"{WARMUP_QUERIES + WORKER_CONCURRENCY} untimed warm-up searches first",
        f"- Baseline: a fresh Python process after the service was stopped; `Embedder` + `chunk_text` + "
        f"`VectorIndex`, one query at a time (encode + search), torch threads = {results['baseline']['torch_threads']}",
        f"- Other load: processes outside the benchmark used {fmt(cpu['other_core_s'])} core-seconds during the "
        f"run ({fmt(cpu['other_share'] * 100)}% of the machine's {m['nproc']} cores), the benchmark "
        f"{fmt(cpu['benchmark_core_s'])}"
        + "".join(f"; {name} phase: {fmt(ph['other_share'] * 100)}% of the machine" for name, ph in cpu["phases"].items()),
        "",
    ]


def ingest_words(ingest: dict) -> str:
    if ingest["requests"] == 1:
        return "the corpus ingested as one job"
    return f"the corpus ingested in {ingest['requests']} requests of up to {ingest['batch']} documents, all submitted at once"


def results_section(results: dict) -> list[str]:
    svc, base = results["service"], results["baseline"]
    sq, cc, ing = svc["sequential"], svc["concurrent"], svc["ingest"]
    bq, b1, bing = base["sequential"], base["sequential_1thread"], base["ingest"]
    qs, qb = results["quality"]["service"], results["quality"]["baseline"]
    worker = svc["memory"]["worker"]

    def percentiles(latency: dict, keys=("p50", "p95", "p99")) -> str:
        return " / ".join(fmt(latency[k]) for k in keys)

    return [
        "## Results",
        "",
        "| | Service (HTTP jobs) | In-process baseline |",
        "|---|---|---|",
        f"| Search latency, sequential, p50 / p95 / p99 (ms) | {percentiles(sq['latency'])} | {percentiles(bq['latency'])} |",
        f"| Search latency, sequential, mean (ms) | {fmt(sq['latency']['mean'])} | {fmt(bq['latency']['mean'])} |",
        f"| Worker-side `took_ms`, p50 / p95 (ms) | {percentiles(sq['took'], ('p50', 'p95'))} | "
        f"(1 torch thread: {percentiles(b1['latency'], ('p50', 'p95'))}) |",
        f"| Throughput, one client, sequential (queries/s) | {fmt(sq['qps'], 2)} | {fmt(bq['qps'], 2)} |",
        f"| Throughput, {cc['clients']} concurrent clients (queries/s) | {fmt(cc['qps'], 2)} | "
        f"batched encode of all queries: {fmt(base['batched_qps'], 1)} |",
        f"| Latency with {cc['clients']} clients, p50 / p95 / p99 (ms) | {percentiles(cc['latency'])} | – |",
        f"| Ingest / index build: wall time (s) | {fmt(ing['wall_s'])} | {fmt(bing['total_s'])} "
        f"(chunk {fmt(bing['chunk_s'])}, embed {fmt(bing['embed_s'])}, index {fmt(bing['index_s'], 2)}) |",
        f"| Ingest: documents/s | {fmt(ing['docs_per_s'])} | {fmt(bing['docs_per_s'])} |",
        f"| Ingest: chunks/s (chunks) | {fmt(ing['chunks_per_s'])} ({ing['chunks']}) | {fmt(bing['chunks_per_s'])} "
        f"({bing['chunks']}); embedding alone {fmt(bing['embed_chunks_per_s'])} |",
        f"| nDCG@10 | {qs['ndcg@10']:.4f} | {qb['ndcg@10']:.4f} |",
        f"| Recall@10 | {qs['recall@10']:.4f} | {qb['recall@10']:.4f} |",
        f"| Peak RSS (MB) | worker: {fmt(worker['sum_hwm_mb'], 0)} summed over {worker['processes']} processes "
        f"({' + '.join(fmt(x, 0) for x in worker['per_process_hwm_mb'])}); peak PSS sum "
        f"{fmt(worker['peak_pss_sum_mb'], 0)} | {fmt(base['memory']['peak_rss_mb'], 0)} |",
        "",
        f"Web processes (gunicorn master + workers), not in the table: peak RSS "
        f"{fmt(svc['memory']['web']['sum_hwm_mb'], 0)} MB summed. "
        f"Failed jobs: ingest {sum(1 for s in ing['statuses'] if s != 'succeeded')}, searches "
        f"{sq['failed']} sequential + {cc['failed']} concurrent; jobs needing a second attempt: "
        f"{sq['retried'] + cc['retried']}; tracebacks in the service logs: "
        f"{sum(f['tracebacks'] for f in svc['log_findings'].values())}. "
        f"Identical rankings between the sequential and concurrent service runs: "
        f"{cc['same_rankings_as_sequential']}/{results['config']['queries']}.",
        "",
    ]


def search_phase_section(svc: dict) -> list[str]:
    sq, cc = svc["sequential"], svc["concurrent"]
    seq, conc = sq["phases"], cc["phases"]
    n = cc["clients"]
    return [
        "### Where a service search spends its time (ms)",
        "",
        f"| Phase | Sequential p50 | Sequential p95 | {n} clients p50 | {n} clients p95 |",
        "|---|---|---|---|---|",
        *(
            f"| {label} | {fmt(seq[key]['p50'])} | {fmt(seq[key]['p95'])} | "
            f"{fmt(conc[key]['p50'])} | {fmt(conc[key]['p95'])} |"
            for key, label in SEARCH_PHASE_LABELS.items()
        ),
        f"| Whole search as the client sees it | {fmt(sq['latency']['p50'])} | {fmt(sq['latency']['p95'])} | "
        f"{fmt(cc['latency']['p50'])} | {fmt(cc['latency']['p95'])} |",
        "",
        "Phases come from the job row's timestamps and the client's clock (one machine, one clock); each column is "
        "its own percentile, so the rows do not add up exactly.",
        "",
    ]


def cpu_section(cpu_by_phase: dict) -> list[str]:
    columns = ("worker", "web", "redis", "driver", "other", "idle")
    return [
        "### Who used the two cores (average cores busy per phase of the service run)",
        "",
        "| Phase | Wall (s) | Worker (parent + children) | Web (gunicorn) | Redis | Benchmark client | "
        "Other processes | Idle |",
        "|---|---|---|---|---|---|---|---|",
        *(
            f"| {name} | {fmt(ph['wall_s'])} | " + " | ".join(fmt(ph[f"{c}_cores"], 2) for c in columns) + " |"
            for name, ph in cpu_by_phase.items()
        ),
        "",
    ]


def reproduce_section() -> list[str]:
    return [
        "## Reproduce",
        "",
        "```",
        "make bench            # or: .venv/bin/python bench/run.py",
        "```",
        "",
        "Needs the SciFact files at `../shared/datasets/scifact/` (or `--dataset PATH`) and `redis-server` on PATH. "
        "`--docs N --queries N --output /tmp/b.md` gives a quick run. See `bench/README.md`.",
        "",
    ]


def summary(results: dict, output: str) -> str:
    """The few lines printed at the end of a run."""
    cfg, svc, base = results["config"], results["service"], results["baseline"]
    sq, cc, bq = svc["sequential"], svc["concurrent"], base["sequential"]
    qs, qb = results["quality"]["service"], results["quality"]["baseline"]
    worker, cpu = svc["memory"]["worker"], results["cpu"]
    lines = [
        "",
        "=== Quarry benchmark (SciFact) ===",
        f"documents {cfg['docs']}, queries {cfg['queries']}, run {results['total_s'] / 60:.1f} min",
        f"ingest   service {svc['ingest']['docs_per_s']:.1f} docs/s ({svc['ingest']['chunks_per_s']:.1f} chunks/s)"
        f" | baseline {base['ingest']['docs_per_s']:.1f} docs/s (embed {base['ingest']['embed_chunks_per_s']:.1f} chunks/s)",
        f"latency  service p50 {sq['latency']['p50']:.1f} / p95 {sq['latency']['p95']:.1f} / p99 "
        f"{sq['latency']['p99']:.1f} ms (took_ms p50 {sq['took']['p50']:.1f}) | baseline p50 {bq['latency']['p50']:.1f}"
        f" / p95 {bq['latency']['p95']:.1f} / p99 {bq['latency']['p99']:.1f} ms",
        f"throughput service {sq['qps']:.2f} q/s sequential, {cc['qps']:.2f} q/s with {cc['clients']} clients"
        f" (p50 {cc['latency']['p50']:.1f}, p95 {cc['latency']['p95']:.1f} ms) | baseline {bq['qps']:.2f} q/s",
        f"quality  nDCG@10 service {qs['ndcg@10']:.4f} baseline {qb['ndcg@10']:.4f} (published ~{PUBLISHED_NDCG});"
        f" Recall@10 {qs['recall@10']:.4f} / {qb['recall@10']:.4f}; identical rankings "
        f"{results['rankings_identical']}/{qs['queries']}",
        f"memory   worker peak RSS {worker['sum_hwm_mb']:.0f} MB summed over {worker['processes']} processes"
        f" (PSS {worker['peak_pss_sum_mb']:.0f} MB) | baseline {base['memory']['peak_rss_mb']:.0f} MB",
        f"other load {cpu['other_share'] * 100:.1f}% of the machine during the run"
        + "".join(f", {k} phase {v['other_share'] * 100:.1f}%" for k, v in cpu["phases"].items()),
    ]
    peer = results.get("peer") or {"skipped": "not measured"}  # older results have none
    lines.append(
        f"peer     skipped: {peer['skipped']}" if not ran(peer) else
        f"peer     txtai {peer['ingest']['docs_per_s']:.1f} docs/s, p50 {peer['sequential']['latency']['p50']:.1f} ms, "
        f"{peer['concurrent']['qps']:.2f} q/s with {peer['concurrent']['clients']} clients, "
        f"nDCG@10 {results['quality']['peer']['ndcg@10']:.4f}"
    )
    lines += [
        f"target   {t.figure}: Quarry {fmt(t.quarry)} ({t.target}): {({True: 'met', False: 'NOT met'}).get(t.met, 'n/a')}"
        for t in targets(results)
    ]
    if svc["errors"]:
        lines.append(f"ERRORS ({len(svc['errors'])}): " + "; ".join(svc["errors"][:5]))
    lines.append(f"report: {output}")
    return "\n".join(lines)


def find_section(text: str, heading: str) -> str | None:
    """The section under `heading`, up to the next "## " heading."""
    match = _section(heading).search(text)
    return match.group(0) if match else None


def write_section(path: Path, heading: str, section: str) -> None:
    """Replace (or add) the section under `heading` in the report at `path`."""
    text = path.read_text() if path.exists() else ""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(splice_section(text, heading, section))


def splice_section(text: str, heading: str, section: str) -> str:
    """`text` with the section under `heading` replaced by `section`, or, when
    it has none, with `section` put before "## Reproduce" (else at the end)."""
    if _section(heading).search(text):
        text = _section(heading).sub(lambda _: section, text, count=1)
    elif (at := text.find("\n## Reproduce")) >= 0:
        text = text[: at + 1] + section + text[at + 1 :]
    else:
        text = (text.rstrip("\n") + "\n\n" if text else "") + section
    return text.rstrip("\n") + "\n"


def _section(heading: str) -> re.Pattern:
    return re.compile(rf"^{re.escape(heading)}\n.*?(?=^## |\Z)", re.M | re.S)
