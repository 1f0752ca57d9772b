"""docs/benchmarks.md and docs/quality.md, rendered from the results file
(docs/benchmarks.json): a fixed introduction, then tables only. Each suite
has its section; a suite not yet measured says which command measures it."""

from __future__ import annotations

import json
from pathlib import Path

from bench import tables
from bench.chaos_tables import chaos
from bench.e2e_tables import PUBLISHED_NDCG, end_to_end
from bench.tables import table

QUALITY_TARGETS = {"dense": 0.645, "keyword": 0.66, "hybrid": 0.68}

INTRO = """# Benchmarks

Measured by `python -m bench <suite>` (the `make bench*` targets) and rendered
from `docs/benchmarks.json` by `python -m bench render`; do not edit by hand.
`make bench` (suite `all`) runs Quarry end to end on BEIR SciFact (HTTP → SQL
job row → Redis → Celery worker → sentence-transformers + FAISS → job row →
client poll) against the same search core called in one Python process (the
limit) and txtai's API (the peer), on the same machine, model and data. Each
section comes from one run of its suite. See `bench/README.md`.
"""

SECTIONS = (  # (results key, heading, make target, tables)
    ("memory", "Worker memory", "bench-memory", tables.memory),
    ("requests", "CPU per request kind (web and Redis)", "bench-requests", tables.request_cpu),
    ("fairness", "Naive clients beside the load test", "bench-fairness", tables.fairness),
    ("webhooks", "Webhook delivery", "bench-webhooks", tables.webhooks),
    ("hnsw", "HNSW at scale (random vectors, in process)", "bench-hnsw", tables.hnsw),
    ("scale", "Flat vs hnsw through the service", "bench-scale", tables.scale),
    ("index-cache", "Many collections within INDEX_CACHE_MB", "bench-index-cache", tables.index_cache),
    ("cluster", "One worker host and two (network namespaces)", "bench-cluster", tables.cluster),
    ("chaos", "Chaos run (faults under load)", "chaos", chaos),
)


def benchmarks_md(results: dict) -> str:
    lines = [INTRO, *section("End to end", "bench", results.get("all"), end_to_end)]
    for key, heading, target, render in SECTIONS:
        entry = memory_entry(results) if key == "memory" else results.get(key)
        lines += section(heading, target, entry, render)
    return "\n".join(lines).rstrip("\n") + "\n"


def memory_entry(results: dict) -> dict | None:
    """The newer of the figures `make bench-memory` measured and those `make bench` did."""
    alone, full = results.get("memory"), results.get("all") or {}
    within = full.get("memory")
    if not within or "skipped" in within or (alone and alone["measured_at"] >= full["measured_at"]):
        return alone
    return {**within, **{key: full[key] for key in ("measured_at", "took_s", "machine")}, "options": {"suite": "all"}}


def section(heading: str, target: str, entry: dict | None, render) -> list[str]:
    if not entry:
        return [f"## {heading}", "", f"Not measured yet: `make {target}`.", ""]
    if "skipped" in entry:
        return [f"## {heading}", "", f"Not measured: {entry['skipped']}", ""]
    return [f"## {heading}", "", *render(entry)]


def quality_md(results: dict) -> str:
    head = ["# Retrieval quality", "",
            "nDCG@10 and recall@100 by document on BEIR SciFact, through the HTTP API (every test query one search "
            "job per healthy pipeline, top_k 100, collapsed per document) and with the same search core in one "
            "process. Measured by `make eval` (`python -m bench eval`); rendered from `docs/benchmarks.json`.", "",
            *table(["Published (different setups: whole documents)", "nDCG@10", "Compare with"],
                   [["BM25 (Elasticsearch), BEIR paper", "0.665", "`keyword`"],
                    ["all-MiniLM-L6-v2, SBERT model card / MTEB", f"{PUBLISHED_NDCG}", "`dense`"]])]  # fmt: skip
    return "\n".join(
        head + section("Results", "eval", results.get("eval"), lambda r: tables.quality(r, QUALITY_TARGETS))
    )


def write(results_path: Path, benchmarks: Path, quality: Path) -> None:
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    benchmarks.write_text(benchmarks_md(results))
    quality.write_text(quality_md(results))
