"""The `memory` suite (also part of `all`): the total PSS of one Celery
worker (main process and its pool, default concurrency) after it has
ingested and searched, with the model loaded once before the pool forks
(WORKER_PRELOAD_MODEL=1, the default) and with each pool process loading
its own (=0). PSS splits each shared page between the processes sharing it,
so its sum is what the worker costs the machine."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import psutil

from bench.common import Log, settings
from bench.service import private_service

DOCUMENTS, SEARCHES = 200, 20
WORDS = "people place time water city river school music market garden science history".split()


def run(options: dict, log: Log) -> dict:
    documents, searches = options.get("documents", DOCUMENTS), options.get("searches", SEARCHES)
    out = {"documents": documents, "searches": searches, "concurrency": settings.worker_concurrency}
    for preload in ("0", "1"):
        workdir = Path(tempfile.mkdtemp(prefix="quarry-bench-memory-"))
        try:
            out[f"preload_{preload}"] = measure(workdir, preload, documents, searches)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)
        log(f"WORKER_PRELOAD_MODEL={preload}: total PSS {out[f'preload_{preload}']['pss_mib']:,.0f} MiB")
    return out


def measure(workdir: Path, preload: str, documents: int, searches: int) -> dict:
    """A private stack whose worker ingests and searches, then its memory."""
    corpus = [{"text": " ".join(WORDS[(i * 7 + j) % len(WORDS)] for j in range(60))} for i in range(documents)]
    with private_service(workdir, WORKER_PRELOAD_MODEL=preload) as (stack, _key):
        stack.start_web()
        worker = stack.start_worker(concurrency=settings.worker_concurrency)
        assert stack.ingest("memory", corpus)["status"] == "succeeded"
        for i in range(searches):  # both pool processes get some
            assert stack.search("memory", query=f"people and places {i}")["status"] == "succeeded"
        time.sleep(2)  # let the pool settle after the last task
        return process_tree_memory(psutil.Process(worker.pid))


def process_tree_memory(parent: psutil.Process) -> dict:
    """PSS and RSS summed over the worker's processes, each one's own pages
    (USS) and its three largest own mappings, in MiB."""
    processes = [parent, *parent.children(recursive=True)]
    memories = [process.memory_full_info() for process in processes]
    mib = 2**20
    return {
        "processes": len(processes),
        "pss_mib": sum(m.pss for m in memories) / mib,
        "rss_mib": sum(m.rss for m in memories) / mib,
        "uss_mib": [m.uss / mib for m in memories],
        "largest_own_mib": [largest_own_mappings(process) for process in processes],
    }


def largest_own_mappings(process: psutil.Process, count: int = 3) -> list[tuple[str, float]]:
    own = [(Path(m.path).name or m.path, (m.private_dirty + m.private_clean) / 2**20)
           for m in process.memory_maps(grouped=True)]  # fmt: skip
    return sorted(own, key=lambda item: item[1], reverse=True)[:count]
