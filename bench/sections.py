"""The report's sections on the one large ingest and the searches sent
during it, and on the load test (bench/report.py puts them in
docs/benchmarks.md)."""

from __future__ import annotations

from bench.client import server_chunks_per_s
from bench.formatting import fmt


def ingest_section(results: dict) -> list[str]:
    svc, base = results["service"], results["baseline"]
    ingest, during = svc["ingest"], svc.get("search_during_ingest")
    if ingest["requests"] != 1 or not during:
        return []
    idle, busy = during["idle"], during["during"]

    def row(name: str, probes: dict) -> str:
        latency, queue_run = probes["latency"], probes["created_to_finished"]
        return (
            f"| {name} | {probes['searches']} | {fmt(latency.get('p50'))} / {fmt(latency.get('p95'))} | "
            f"{fmt(queue_run.get('p50'))} / {fmt(queue_run.get('p95'))} | {fmt(probes['took'].get('p50'))} | "
            f"{probes['failed']} |"
        )

    return [
        "### One large ingest, and searches while it runs",
        "",
        f"The corpus went in as ONE ingest job of {ingest['documents']:,} documents ({ingest['chunks']:,} chunks): "
        f"{fmt(ingest['server_wall_s'])} s from its `created_at` to its `finished_at`, "
        f"{fmt(server_chunks_per_s(ingest))} chunks/s, against {fmt(base['ingest']['embed_chunks_per_s'])} chunks/s "
        f"for the in-process encode of the same chunks (torch threads = {base['torch_threads']}). The client "
        f"saw {fmt(ingest['wall_s'])} s, including the upload of the JSON body ({fmt(ingest['submit_s'])} s) and "
        "polling once a second.",
        "",
        f"Searches went to a collection of their own ({during['documents']} documents, ingested first), one every "
        f"{during['gap_s']:g} s, first on the idle service, then from the moment the large job was running"
        + (" (the ingest finished before all of them were sent)" if during["ingest_finished_first"] else "")
        + ":",
        "",
        "| Searches | n | client p50 / p95 (ms) | `created_at` → `finished_at` p50 / p95 (ms) | `took_ms` p50 | failed |",
        "|---|---|---|---|---|---|",
        row("on the idle service", idle),
        row("during the ingest", busy),
        "",
    ]


def load_section(svc: dict) -> list[str]:
    load = svc.get("load")
    if not load:
        return []
    if "skipped" in load:
        return ["### Load test (locust)", "", f"Not measured: {load['skipped']}", ""]

    def row(name: str, stats: dict | None) -> str:
        if stats is None:
            return f"| {name} | 0 | – | – | – |"
        return (
            f"| {name} | {stats['requests']:,} | {fmt(stats['p50'], 0)} / {fmt(stats['p95'], 0)} / "
            f"{fmt(stats['p99'], 0)} | {stats['failures']} |"
        )

    return [
        "### Load test (locust)",
        "",
        f"`bench/locustfile.py`, headless, {load['users']} users for {load['seconds']} s against the same service "
        "after the search phases (as `make load` runs it against `make run`): each user pauses 1–5 s between "
        "actions and searches (weight 8, submit then poll as the hints say), ingests 1–3 short documents (weight 1) "
        f"or lists its jobs (weight 2). Locust ran on the same two cores. {fmt(load['requests_per_s'])} HTTP "
        f"requests/s; errors {load['errors']}; locust exited {load['exit_code']}.",
        "",
        "| What | n | p50 / p95 / p99 (ms) | failures |",
        "|---|---|---|---|",
        row("Search submit `POST` → 202", load["submit"]),
        *([in_app_row(load["submit_in_app"])] if "submit_in_app" in load else []),
        row("Job poll `GET /api/v1/jobs/{id}`", load["poll"]),
        row("Search job, submit → seen final", load["search_job"]),
        row("Ingest job, submit → seen final", load["ingest_job"]),
        "",
        *(
            [f"Errors: {failures_words(load['failures'])}.", ""]
            if load.get("failures")
            else []
        ),
    ]


def in_app_row(stats: dict) -> str:
    return (
        f"| the same submits as the app timed them (access log) | {stats['n']:,} | {fmt(stats.get('p50'), 0)} / "
        f"{fmt(stats.get('p95'), 0)} / {fmt(stats.get('p99'), 0)} | – |"
    )


def failures_words(failures: list[dict]) -> str:
    """The load test's failed requests and errors: what, why, how often."""
    return "; ".join(f"{f['what']}: {f['error']} (×{f['count']})" for f in failures)
