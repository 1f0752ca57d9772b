"""python -m bench <suite> [options]: run one suite, record its figures in
docs/benchmarks.json (under the suite's key, stamped with when, where and
on what code), then render docs/benchmarks.md and docs/quality.md from that
file. `render` only renders. See bench/README.md."""

from __future__ import annotations

import argparse
import importlib
import sys
import time
from pathlib import Path

from bench import render
from bench.common import BENCHMARKS_MD, DATASET, QUALITY_MD, RESULTS, isolate_from_local_service, logger, save_results
from bench.measure import ROOT, machine_info


def parser() -> argparse.ArgumentParser:
    top = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    top.add_argument("--results", type=Path, default=RESULTS, help="the results file (JSON)")
    top.add_argument("--output", type=Path, default=BENCHMARKS_MD, help="benchmarks.md to render")
    top.add_argument("--quality-output", type=Path, default=QUALITY_MD, help="quality.md to render")
    suites = top.add_subparsers(dest="suite", required=True)
    for name, module, about in (
        ("all", "end_to_end", "end to end on SciFact: service, in-process baseline, txtai, load test, worker memory"),
        ("eval", "quality", "nDCG@10 and recall@100 per pipeline, service and in process"),
    ):
        suite = suites.add_parser(name, help=about)
        suite.add_argument("--dataset", type=Path, default=DATASET, help="BEIR SciFact directory")
        suite.add_argument("--docs", type=int, help="use N documents (the chosen queries' judged ones first)")
        suite.add_argument("--queries", type=int, help="use the first N judged test queries")
        suite.add_argument("--ingest-timeout", type=float, default=3600)
        suite.set_defaults(module=module)
    every = suites.choices["all"]
    every.add_argument("--no-peer", action="store_true", help="skip txtai's API")
    every.add_argument("--no-load", action="store_true", help="skip the locust load test")
    every.add_argument("--no-memory", action="store_true", help="skip the worker-memory phase")
    every.add_argument("--load-seconds", type=int, default=60)
    hooks = suites.add_parser("webhooks", help="job finished → webhook first attempt, deliveries/s")
    hooks.add_argument("--searches", type=int, default=100)
    hooks.add_argument("--pings", type=int, default=500)
    hooks.set_defaults(module="webhooks")
    hnsw = suites.add_parser("hnsw", help="random vectors in an hnsw index (HNSW_* settings)")
    hnsw.add_argument("--vectors", type=int, default=1_000_000)
    hnsw.add_argument("--hnsw-queries", type=int, default=1000, help="queries per set")
    hnsw.add_argument("--sweep", default="64,128,256,512,1024,2048,4096", help="efSearch values")
    hnsw.add_argument("--build-limit-min", type=float, default=60.0, help="stop adding vectors after this")
    hnsw.set_defaults(module="hnsw")
    scale = suites.add_parser("scale", help="flat vs hnsw search jobs through the service on N chunks")
    scale.add_argument("--chunks", type=int, default=200_000, help="chunks per collection (a multiple of 4)")
    scale.add_argument("--search-share", type=float, default=1.0, help="run this share of the searches")
    scale.set_defaults(module="scale")
    mem = suites.add_parser("memory", help="a worker's total PSS, model before the fork and a model per process")
    mem.add_argument("--documents", type=int, default=200)
    mem.add_argument("--searches", type=int, default=20)
    mem.set_defaults(module="memory")
    chaos = suites.add_parser("chaos", help="N minutes of mixed load while workers, Redis, PostgreSQL, beat fail")
    chaos.add_argument("--minutes", type=float, default=20, help="minutes of load (the faults scale to it)")
    chaos.add_argument("--database", choices=("postgres", "sqlite"), default="postgres")
    chaos.add_argument("--drain-minutes", type=float, default=15, help="longest quiet drain before the checks")
    chaos.add_argument("--dataset", type=Path, default=DATASET, help="BEIR SciFact directory (texts and queries)")
    chaos.add_argument("--keep-logs", type=Path, default=ROOT / "var" / "chaos", help="where the service logs are kept")
    chaos.set_defaults(module="chaos")
    requests = suites.add_parser("requests", help="web and Redis CPU per submit, poll and 304, each alone")
    requests.add_argument("--requests", type=int, default=300, help="requests of each kind")
    requests.set_defaults(module="request_cpu")
    fairness = suites.add_parser(
        "fairness", help="the load test alone, then beside a 10 ms poller and a tight-loop submitter"
    )
    fairness.add_argument("--load-seconds", type=int, default=60)
    fairness.set_defaults(module="fairness")
    cache = suites.add_parser(
        "index-cache", help="many collections round-robin within INDEX_CACHE_MB: memory, warm and cold"
    )
    cache.add_argument("--collections", type=int, default=200)
    cache.add_argument("--chunks", type=int, default=2000, help="chunks per collection")
    cache.add_argument("--clients", type=int, default=8)
    cache.add_argument("--budget-mb", type=int, default=256, help="INDEX_CACHE_MB of each worker process")
    cache.set_defaults(module="index_cache")
    hosts = suites.add_parser("cluster", help="one worker host, then two, on the namespace topology (root)")
    hosts.add_argument("--chunks", type=int, default=20_000, help="chunks in the collection searched")
    hosts.add_argument("--clients", type=int, default=8)
    hosts.add_argument("--seconds", type=float, default=30, help="seconds of load per phase")
    hosts.set_defaults(module="cluster")
    suites.add_parser("render", help="only render the Markdown from the results file").set_defaults(module=None)
    return top


def main() -> int:
    args = parser().parse_args()
    if args.module is not None:
        isolate_from_local_service()
        started, machine, log = time.time(), machine_info(), logger()
        options = {
            k: v for k, v in vars(args).items() if k not in ("module", "suite", "results", "output", "quality_output")
        }
        # Imported here: only the suite that runs loads what it needs (torch, FAISS).
        figures = importlib.import_module(f"bench.{args.module}").run(options, log)
        options = {k: str(v) if isinstance(v, Path) else v for k, v in options.items()}
        save_results(args.results, args.suite, figures, options, machine, started)
        print(f"recorded {args.suite} in {args.results}")
    render.write(args.results, args.output, args.quality_output)
    print(f"rendered {args.output} and {args.quality_output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
