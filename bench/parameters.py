"""The fixed settings of a benchmark run, in one place: the report quotes
them, so the numbers and the text describing them cannot drift apart."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_DATASET = ROOT.parent / "shared" / "datasets" / "scifact"
DEFAULT_OUTPUT = ROOT / "docs" / "benchmarks.md"

COLLECTION = "scifact"

# The sections of docs/benchmarks.md each script writes with its own run;
# make bench rewrites the rest of the file and keeps these.
WEBHOOK_SECTION = "## Webhook delivery"
HNSW_SECTION = "## HNSW at scale"
SCALE_SECTION = "## 200k chunks through the service: flat vs hnsw"
MEMORY_SECTION = "## Worker memory"
TOP_K = 10

# Seconds between GET /jobs/{id} while a search runs: short, so the client
# notices a finished search soon; each poll costs web-process CPU.
SEARCH_POLL_INTERVAL = 0.020
# A search not finished after this long counts as failed.
SEARCH_TIMEOUT = 120.0

# Documents per ingest request where a corpus goes in as several jobs (make
# eval, the peer's /add), submitted at once so the worker's children share
# the work. make bench ingests the whole corpus as ONE job: issue 10's target
# is for a single large ingest.
INGEST_BATCH = 500
# Seconds between polls of the pending ingest jobs: faster polling would take
# CPU from the ingest it measures.
INGEST_POLL_INTERVAL = 1.0

# Closed-loop client threads in the concurrent phase (16 since issue 10,
# whose targets are stated for 16 clients; the peer gets as many).
CLIENT_THREADS = 16
# Celery pool processes of the one worker: one per core of the 2-core
# machine the report was made on.
WORKER_CONCURRENCY = 2
# Untimed searches before the sequential phase: they load the index into
# each worker child, and are as many as the poll hints' median is taken
# over, so the sequential phase's hints come from searches of this
# collection on an idle service, not from the probe searches before it.
WARMUP_QUERIES = 50

# Searches during the large ingest: they go to a collection of their own (the
# first PROBE_DOCS documents, ingested before), PROBE_SEARCHES on the idle
# service, then as many while the ingest runs, PROBE_GAP_S apart both times.
PROBE_COLLECTION = "probe"
PROBE_DOCS = 200
PROBE_SEARCHES = 30
PROBE_GAP_S = 1.0

# The load test (bench/locustfile.py) run against the same service, as
# `make load` runs it against `make run`.
LOAD_USERS = 64
LOAD_SPAWN_RATE = 16
LOAD_SECONDS = 60
# Locust's names for what it times (bench/locustfile.py): requests by route,
# so the statistics have one row per route, and whole jobs.
SEARCH_ROUTE = "/api/v1/collections/[name]/search"
INGEST_ROUTE = "/api/v1/collections/[name]/documents"
JOB_ROUTE = "/api/v1/jobs/[id]"
JOB_LIST = "/api/v1/jobs?limit=20"
SEARCH_JOB = "search job (submit→result)"
CACHED_SEARCH_JOB = "search job, cached (submit→result)"
INGEST_JOB = "ingest job (submit→result)"

# all-MiniLM-L6-v2 on BEIR SciFact (MTEB / SBERT tables).
PUBLISHED_NDCG = 0.645

# Issue 10's targets, each against the in-process limit measured in the same
# run: one search's created -> finished p50 at most this many times a single
# in-process encode + FAISS search; searches/s with CLIENT_THREADS clients at
# least this share of the batched in-process throughput; and their p50 as the
# clients see it at most this many ms.
TARGET_SEARCH_X_LIMIT = 1.5
TARGET_CONCURRENT_X_LIMIT = 0.75
TARGET_CONCURRENT_P50_MS = 150.0
# One ingest job's chunks/s at least this share of the in-process encode of
# the same chunks; a search during it at most this many times its idle p50;
# the search submit's p95 at LOAD_USERS at most this many ms; the worker's
# total PSS at most this share of what it was with a model per pool process.
TARGET_INGEST_X_LIMIT = 0.9
TARGET_DURING_INGEST_X_IDLE = 3.0
TARGET_SUBMIT_P95_MS = 20.0
TARGET_MEMORY_X_BEFORE = 0.6

# The benchmark's API key: the top tier, with its limits raised through the
# environment, so the rate limiter and the in-flight quota never refuse the
# benchmark: it measures the service, not the limits.
BENCH_TIER = "enterprise"
BENCH_LIMITS = {"RATE_LIMIT_ENTERPRISE": "1000000/minute", "INFLIGHT_JOBS_ENTERPRISE": "100000"}
# make bench's service also runs with the result cache off: the concurrent
# phase sends the queries the sequential phase has just answered, and an
# answer read back from Redis (a job born `succeeded`) measures the cache, not
# a search.
BENCH_SERVICE_ENV = {**BENCH_LIMITS, "SEARCH_CACHE_TTL_SECONDS": "0"}


def add_run_arguments(parser, output: Path, *, ingest_timeout: float, attempts: int) -> None:
    """The options every SciFact run takes (bench/run.py, bench/eval.py)."""
    parser.add_argument("--dataset", type=Path, default=DEFAULT_DATASET, help="BEIR SciFact directory")
    parser.add_argument("--docs", type=int, default=None, help="use N documents (default: all)")
    parser.add_argument("--queries", type=int, default=None, help="use the first N test queries (default: all)")
    parser.add_argument("--output", type=Path, default=output, help="markdown report (overwritten)")
    parser.add_argument("--json", type=Path, default=None, help="also write the raw results here")
    parser.add_argument("--keep", action="store_true", help="keep the temp dir (service logs, database)")
    parser.add_argument("--ingest-timeout", type=float, default=ingest_timeout)
    parser.add_argument("--attempts", type=int, default=attempts, help="service phase attempts if its processes get killed")
