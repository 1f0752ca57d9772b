#!/usr/bin/env python
"""Worker memory: the total PSS of one Celery worker (main process and its
pool, default concurrency) after it has ingested and searched, with the model
loaded once before the pool forks (WORKER_PRELOAD_MODEL=1, the default) and
with each pool process loading its own (=0, how workers ran before). Both in
one run, on the same machine. Writes the "## Worker memory" section of
docs/benchmarks.md (`make bench-memory`)."""

from __future__ import annotations

import argparse
import datetime as dt
import sys
import tempfile
import time
from pathlib import Path

import psutil

# As in bench/run.py: the project root goes first on sys.path, so `app` and `bench` import.
ROOT = Path(__file__).resolve().parent.parent
if not __package__:
    sys.path[0] = str(ROOT)

from app.config import settings  # noqa: E402
from bench.parameters import DEFAULT_OUTPUT, MEMORY_SECTION, TARGET_MEMORY_X_BEFORE  # noqa: E402
from bench.report import write_section  # noqa: E402
from bench.system import code_state, code_words, load_average  # noqa: E402
from devstack.processes import RedisServer, Stack, create_database  # noqa: E402

SECTION = MEMORY_SECTION
MODES = {"0": "each pool process loads its own model (before)", "1": "model loaded before the fork (now)"}
DOCUMENTS = 200
SEARCHES = 20


def corpus(n: int) -> list[dict[str, str]]:
    words = "people place time water city river school music market garden science history".split()
    return [{"id": f"doc-{i}", "text": " ".join(words[(i * 7 + j) % len(words)] for j in range(60))} for i in range(n)]


def process_tree_pss(root: int) -> dict:
    """PSS and RSS in bytes of `root` and every process below it, in all and
    each process's own (USS: pages no other process shares)."""
    parent = psutil.Process(root)
    processes = [parent, *parent.children(recursive=True)]
    memories = [process.memory_full_info() for process in processes]
    return {
        "pss": sum(m.pss for m in memories),
        "rss": sum(m.rss for m in memories),
        "processes": len(memories),
        "uss": [m.uss for m in memories],
        "largest_own": [largest_own_mappings(process) for process in processes],
    }


def largest_own_mappings(process: psutil.Process, count: int = 3) -> list[tuple[str, int]]:
    """What makes up a process's USS: its largest mappings by pages only it
    maps (dirty: written here; clean: file pages only it has read)."""
    own = [(Path(m.path).name or m.path, m.private_dirty + m.private_clean) for m in process.memory_maps(grouped=True)]
    return sorted(own, key=lambda item: item[1], reverse=True)[:count]


def measure(preload: str, documents: int, searches: int) -> dict:
    """A private stack whose worker ingests and searches, then its memory."""
    workdir = Path(tempfile.mkdtemp(prefix="quarry-bench-memory-"))
    redis = RedisServer(workdir / "redis").start()
    url, drop = create_database(workdir)
    stack = Stack(workdir, url, redis, WORKER_PRELOAD_MODEL=preload)
    try:
        stack.authenticate(stack.create_key("bench", tier="enterprise"))
        stack.start_web()
        worker = stack.start_worker(concurrency=settings.worker_concurrency)
        assert stack.ingest("memory", corpus(documents))["status"] == "succeeded"
        for i in range(searches):  # both pool processes get some
            assert stack.search("memory", query=f"people and places {i}")["status"] == "succeeded"
        time.sleep(2)  # let the pool settle after the last task
        return process_tree_pss(worker.pid)
    finally:
        stack.stop()
        redis.stop()
        drop()


def measure_both(documents: int, searches: int, log) -> dict:
    """Each way in turn: a model per pool process (before), then loaded
    before the fork (now); with when, on what code and what the load was."""
    results: dict = {
        "documents": documents,
        "searches": searches,
        "measured_at": f"{dt.datetime.now(dt.UTC):%Y-%m-%d %H:%M UTC}",
        "code": code_words(code_state()),
        "load_before": load_average(),
    }
    for mode in MODES:
        log(f"WORKER_PRELOAD_MODEL={mode}: {MODES[mode]}")
        results[mode] = measure(mode, documents, searches)
        log(f"  total PSS {results[mode]['pss'] / 2**20:,.0f} MiB over {results[mode]['processes']} processes")
    return results


def render(results: dict) -> str:
    before, now = results["0"]["pss"], results["1"]["pss"]
    ratio = now / before
    rows = [
        f"| {MODES[mode]} | {r['processes']} | {r['pss'] / 2**20:,.0f} | {r['rss'] / 2**20:,.0f} | "
        f"{' / '.join(f'{uss / 2**20:,.0f}' for uss in r['uss'])} |"
        for mode, r in ((mode, results[mode]) for mode in MODES)
    ]
    verdict = "met" if ratio <= TARGET_MEMORY_X_BEFORE else "**not met**"
    return "\n".join(
        [
            SECTION,
            "",
            "Measured by `make bench`, or alone by `make bench-memory` (`.venv/bin/python bench/worker_memory.py`): "
            "one worker with the default "
            f"concurrency ({settings.worker_concurrency} pool processes on this machine) ingests "
            f"{results['documents']} documents and runs {results['searches']} searches, then the PSS of its main process and pool is summed "
            "(PSS splits each shared page between the processes sharing it, so the sum is what the worker costs the "
            "machine; RSS counts shared pages once per process). Both ways in one run; "
            f"{results['measured_at']}, code: {results['code']}, load average before {' '.join(results['load_before'])}.",
            "",
            "| worker | processes | total PSS, MiB | total RSS, MiB | USS per process (main / pool), MiB |",
            "|---|---|---|---|---|",
            *rows,
            "",
            f"Total PSS now is {ratio:.2f}× before (target ≤ {TARGET_MEMORY_X_BEFORE}×: {verdict}). The model and torch's own memory "
            "are loaded once, in the main process, before the pool forks; the pool processes share those pages "
            "copy-on-write because nothing writes to them. Torch's thread pools start only in the pool processes, "
            "after the fork (no model computation runs in the main process). What sharing cannot remove is each "
            "process's own memory (the USS column): what a pool process allocates when it runs (torch's buffers, "
            "the collection's indexes, the library code it pages in) and what the main process keeps for itself."
            + own_parts(results["1"]),
            "",
            "",
        ]
    )


def own_parts(result: dict) -> str:
    """The largest mappings of each process's USS, as a sentence."""
    if not result.get("largest_own"):
        return ""
    return " Its largest parts in this run, model loaded before the fork (MiB): " + "; ".join(
        f"{'main process' if i == 0 else f'pool process {i}'}: "
        + ", ".join(f"{name} {size / 2**20:,.0f}" for name, size in parts)
        for i, parts in enumerate(result["largest_own"])
    ) + "."


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--documents", type=int, default=DOCUMENTS)
    parser.add_argument("--searches", type=int, default=SEARCHES)
    parser.add_argument("--output", type=Path, default=DEFAULT_OUTPUT, help="markdown file; its section is replaced")
    args = parser.parse_args()
    results = measure_both(args.documents, args.searches, log=lambda line: print(line, flush=True))
    section = render(results)
    write_section(args.output, SECTION, section)
    print(f"{section}wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
