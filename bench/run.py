#!/usr/bin/env python
"""Quarry benchmark on SciFact (BEIR): the service end to end vs. the same
search core in one process.

    .venv/bin/python bench/run.py                      # full run, writes docs/benchmarks.md
    .venv/bin/python bench/run.py --docs 200 --queries 20 --output /tmp/bench.md   # quick

One run does, in order:
  1. service: private Redis + SQLite + gunicorn web + ONE Celery worker
     (concurrency 2); ingest the corpus over HTTP, run every query as a search
     job sequentially (client polls every 20 ms), then from 16 client threads;
  2. tears the service down;
  3. baseline: a fresh Python process (bench/run.py --baseline) that chunks,
     embeds and indexes the same corpus with app.search.* and runs the same
     queries one at a time;
  4. the peer: txtai's API in a venv of its own (bench/peer_txtai.py), same
     model, same corpus and queries, same clients (--no-peer skips it);
  5. scores all three (nDCG@10, Recall@10 by document) and writes the report,
     with issue 10's targets as ratios to the in-process limit of this run.
See bench/README.md.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import shutil
import sys
import tempfile
import time
import traceback
from pathlib import Path

# Run as a script (`make bench`), Python puts bench/ itself first on
# sys.path; the project root goes there instead, so `bench`, `devstack` and
# `app` import as packages.
ROOT = Path(__file__).resolve().parent.parent
if not __package__:
    sys.path[0] = str(ROOT)

from bench import worker_memory  # noqa: E402
from bench.baseline import measure_baseline, run_baseline_process  # noqa: E402
from bench.dataset import SciFact, load_scifact, quality  # noqa: E402
from bench.interpretation import interpret  # noqa: E402
from bench.parameters import (  # noqa: E402
    DEFAULT_OUTPUT,
    HNSW_SECTION,
    INGEST_POLL_INTERVAL,
    SCALE_SECTION,
    WEBHOOK_SECTION,
    add_run_arguments,
)
from bench.peer_txtai import run_peer  # noqa: E402
from bench.report import find_section, render, splice_section, summary  # noqa: E402
from bench.service import run_service_with_retries  # noqa: E402
from bench.system import OtherLoad, load_average, machine_info  # noqa: E402
from bench.targets import ran  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_run_arguments(parser, DEFAULT_OUTPUT, ingest_timeout=1800, attempts=4)
    parser.add_argument("--render", type=Path, default=None, help="only re-render the report from a --json file")
    parser.add_argument("--retry-wait", type=float, default=30.0)
    parser.add_argument("--no-peer", action="store_true", help="skip the peer (txtai's API); the report says so")
    parser.add_argument("--no-load", action="store_true", help="skip the load test (locust); the report says so")
    parser.add_argument("--no-memory", action="store_true", help="skip the worker-memory phase; the report says so")
    parser.add_argument("--baseline", type=Path, default=None, help=argparse.SUPPRESS)  # internal: see bench/baseline.py
    args = parser.parse_args()
    args.dataset = args.dataset.resolve()
    return args


def main() -> int:
    args = parse_args()
    if args.baseline:
        measure_baseline(args.dataset, args.docs, args.queries, args.baseline)
        return 0
    if args.render:
        write_report(json.loads(args.render.read_text()), args.output)
        print(f"wrote {args.output}")
        return 0
    results = run_benchmark(args)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))
    write_report(results, args.output)
    print(summary(results, str(args.output)))
    return 0


# Sections other scripts write, each with its own run (make bench-webhooks,
# bench-hnsw, bench-scale); kept as they are when this report is rewritten.
KEPT_SECTIONS = (WEBHOOK_SECTION, HNSW_SECTION, SCALE_SECTION)


def write_report(results: dict, output: Path) -> None:
    results["interpretation"] = interpret(results)
    output.parent.mkdir(parents=True, exist_ok=True)
    report = render(results)
    previous = output.read_text() if output.exists() else ""
    kept = KEPT_SECTIONS
    if ran(results.get("memory")):
        report = splice_section(report, worker_memory.SECTION, worker_memory.render(results["memory"]))
    else:  # the section an earlier run (or make bench-memory) wrote stays
        kept += (worker_memory.SECTION,)
    for heading in kept:
        if (section := find_section(previous, heading)) is not None:
            report = splice_section(report, heading, section)
    output.write_text(report)


def run_benchmark(args: argparse.Namespace) -> dict:
    """The service run, the baseline, then the peer; all scored against the qrels."""
    started = time.perf_counter()

    def log(message: str) -> None:
        print(f"[{time.perf_counter() - started:7.1f}s] {message}", flush=True)

    whole_run = OtherLoad()
    workdir = Path(tempfile.mkdtemp(prefix="quarry-bench-"))
    isolate_from_local_service()
    data = load_scifact(args.dataset, args.docs, args.queries)
    machine = machine_info()
    log(f"{len(data.documents)} documents, {len(data.queries)} queries; workdir {workdir}")
    log(f"machine: {machine['nproc']} CPUs, {machine['cpu_model']}, load {machine['loadavg_at_start']}")
    try:
        runs, phase_loads = run_phases(args, data, workdir, log)
    finally:
        if args.keep:
            print(f"kept {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)
    load = whole_run.measure()
    service, baseline = runs["service"], runs["baseline"]
    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "machine": machine,
        "config": run_config(args.dataset, data),
        **{name: {k: v for k, v in ran.items() if k != "rankings"} for name, ran in runs.items()},
        "quality": {name: quality(ran["rankings"], data.qrels) for name, ran in runs.items() if "rankings" in ran},
        "rankings_identical": sum(
            1 for qid in data.qrels if service["rankings"].get(qid) == baseline["rankings"].get(qid)
        ),
        "total_s": load["wall_s"],
        "cpu": {
            **{k: load[k] for k in ("machine_busy_core_s", "benchmark_core_s", "other_core_s", "other_share")},
            "loadavg_at_end": load_average(),
            "phases": phase_loads,
        },
    }


def run_phases(args: argparse.Namespace, data: SciFact, workdir: Path, log) -> tuple[dict, dict]:
    """(what each phase measured, the other load during it): the service,
    the baseline, then the peer, one at a time."""
    runs, loads = {}, {}
    phase = OtherLoad()
    runs["service"] = run_service_with_retries(
        data, workdir, args.ingest_timeout, args.attempts, args.retry_wait, log, load_test=not args.no_load
    )
    loads["service"], phase = phase.measure(), OtherLoad()
    log("service stopped; running the in-process baseline")
    runs["baseline"] = run_baseline_process(args.dataset, args.docs, args.queries, workdir)
    loads["baseline"], phase = phase.measure(), OtherLoad()
    log_baseline(runs["baseline"], log)
    runs["peer"] = run_peer_phase(args, data, workdir, log)
    if ran(runs["peer"]):
        loads["peer"], phase = phase.measure(), OtherLoad()
    runs["memory"] = {"skipped": "`--no-memory` was given"} if args.no_memory else run_memory_phase(log)
    if ran(runs["memory"]):
        loads["memory"] = phase.measure()
    return runs, loads


def run_memory_phase(log) -> dict:
    """The worker's total PSS both ways (bench/worker_memory.py), or {"skipped": why}."""
    log("worker memory: a worker with a model per pool process, then one loaded before the fork")
    try:
        return worker_memory.measure_both(worker_memory.DOCUMENTS, worker_memory.SEARCHES, log)
    except Exception as exc:  # noqa: BLE001 - reported in the results and the report
        traceback.print_exc()
        return {"skipped": f"the memory phase failed: {type(exc).__name__}: {exc}"}


def run_peer_phase(args: argparse.Namespace, data: SciFact, workdir: Path, log) -> dict:
    """The peer's measurements, or {"skipped": why}: --no-peer, or txtai
    could not be installed, started or measured. The run goes on either way:
    the service's and the baseline's numbers stand without it."""
    if args.no_peer:
        return {"skipped": "`--no-peer` was given"}
    log("running the peer: txtai's API")
    try:
        return run_peer(data, workdir / "peer", args.ingest_timeout, log)
    except Exception as exc:  # noqa: BLE001 - reported in the results and the report
        traceback.print_exc()
        return {"skipped": f"the peer phase failed: {type(exc).__name__}: {exc}"}


def isolate_from_local_service() -> None:
    """Keep a developer's local service out of the run: the processes the run
    starts inherit this environment, so none may point them at another
    Redis, broker or database."""
    for name in ("REDIS_URL", "DATABASE_URL", "CELERY_BROKER_URL", "TEST_DATABASE_URL"):
        os.environ.pop(name, None)


def run_config(dataset: Path, data: SciFact) -> dict:
    """The settings the service ran with, as the report quotes them."""
    from app.config import settings
    from app.services.handlers.ingest import DOCS_PER_CHECKPOINT
    from app.services.jobs import kind_of

    return {
        "dataset": str(dataset),
        "docs": len(data.documents),
        "corpus_docs": data.corpus_documents,
        "queries": len(data.queries),
        "qrels_queries": data.judged_queries,
        "model": settings.embedding_model,
        "chunk_tokens": settings.chunk_tokens,
        "chunk_overlap_tokens": settings.chunk_overlap_tokens,
        "embed_batch_size": settings.embed_batch_size,
        "docs_per_checkpoint": DOCS_PER_CHECKPOINT,
        "search_poll_after_ms": kind_of("search").poll_after_ms,
        "ingest_poll_s": INGEST_POLL_INTERVAL,
        "web": f"{settings.web_concurrency} processes × {settings.web_threads} threads",
    }


def log_baseline(baseline: dict, log) -> None:
    ingest, latency = baseline["ingest"], baseline["sequential"]["latency"]
    log(
        f"baseline: ingest {ingest['total_s']:.1f} s ({ingest['docs_per_s']:.1f} docs/s, "
        f"embed {ingest['embed_chunks_per_s']:.1f} chunks/s), p50 {latency['p50']:.1f} ms, p95 {latency['p95']:.1f} ms"
    )


if __name__ == "__main__":
    sys.exit(main())
