"""One large ingest job, and searches sent while it runs (issue 10, item 4):
the job's chunks/s, to set against the in-process encode of the same chunks,
and a search's latency behind it against the same searches on the idle
service.

The searches go to a small collection of their own (the first PROBE_DOCS
documents, ingested before), one every PROBE_GAP_S, in the same way while
the service is idle and while the ingest runs, so the two differ only by the
ingest. They stop after PROBE_SEARCHES, early in a long ingest: each costs
the ingest a few milliseconds of CPU."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator

from bench import client as driver
from bench.parameters import PROBE_COLLECTION, PROBE_DOCS, PROBE_GAP_S, PROBE_SEARCHES
from devstack.client import Client


def idle_probes(client: Client, documents: list[dict], texts: Iterator[str], timeout: float,
                check_alive: Callable[[], None]) -> dict:
    """The probe collection, then its searches on the idle service."""
    driver.ingest_corpus(client, documents[:PROBE_DOCS], timeout, check_alive, batch=None, collection=PROBE_COLLECTION)
    return probe_searches(client, texts, stop=lambda: False)


def ingest_with_probes(client: Client, documents: list[dict], texts: Iterator[str], timeout: float,
                       check_alive: Callable[[], None]) -> tuple[dict, dict]:
    """(the one ingest job's summary, the probe searches sent while it ran)."""
    t0 = time.perf_counter()
    (job_id,) = driver.submit_corpus(client, documents, check_alive, batch=None)
    submit_s = time.perf_counter() - t0
    wait_until_running(client, job_id, timeout, check_alive)
    during = probe_searches(client, texts, stop=lambda: is_final(client, job_id))
    jobs = driver.wait_for_jobs(client, [job_id], timeout, check_alive)
    return driver.summarize_ingest(jobs, submit_s, wall_s=time.perf_counter() - t0, batch=len(documents)), during


def during_ingest_summary(idle: dict, during: dict) -> dict:
    return {
        "idle": summary_of(idle),
        "during": summary_of(during),
        "gap_s": PROBE_GAP_S,
        "documents": PROBE_DOCS,
        "ingest_finished_first": len(during["results"]) < PROBE_SEARCHES,
    }


def probe_searches(client: Client, texts: Iterator[str], stop: Callable[[], bool]) -> dict:
    """Up to PROBE_SEARCHES searches of the probe collection, PROBE_GAP_S
    apart, until `stop()`."""
    results: list[dict] = []
    started = time.perf_counter()
    while len(results) < PROBE_SEARCHES and not stop():
        results.append(driver.timed_search(client, next(texts), collection=PROBE_COLLECTION))
        time.sleep(PROBE_GAP_S)
    return {"results": results, **driver.summarize_searches(results, time.perf_counter() - started)}


def summary_of(probes: dict) -> dict:
    """What the report needs of a probe run (not every result)."""
    return {
        "searches": len(probes["results"]),
        "failed": probes["failed"],
        "latency": probes["latency"],
        "created_to_finished": probes["phases"]["created_to_finished"],
        "took": probes["took"],
    }


def wait_until_running(client: Client, job_id: str, timeout: float, check_alive: Callable[[], None]) -> None:
    deadline = time.monotonic() + timeout
    while client.get(f"/api/v1/jobs/{job_id}").json()["status"] == "queued":
        check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"ingest job {job_id} still queued after {timeout} s")
        time.sleep(0.05)


def is_final(client: Client, job_id: str) -> bool:
    return client.get(f"/api/v1/jobs/{job_id}").json()["status"] in driver.TERMINAL
