"""The `chaos` suite: a bounded chaos run, not a test. N minutes of mixed
load (uploads of PDF/DOCX/TXT/MD files and JSON documents, searches of every
healthy pipeline, batch searches, cancels, webhooks to receivers that fail,
slow down and come back) against a private Quarry (web, two workers, beat,
Redis, and PostgreSQL or SQLite) while workers are SIGKILLed, Redis and
PostgreSQL restarted and beat killed; then, after a quiet drain, the checks
(bench/chaos_checks.py, bench/chaos_webhooks.py) and each fault's healing time."""

from __future__ import annotations

import json
import re
import shutil
import tempfile
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path

from app.services.jobs import TERMINAL
from bench import chaos_checks
from bench.chaos_faults import Faults, ScriptedReceiver
from bench.chaos_ledger import Corpus, Ledger, RecordingClient, Tally, make_document, upload_request
from bench.chaos_load import FILE_KINDS, LoadContext, NaiveClient, start_load
from bench.chaos_tables import CHECKS
from bench.chaos_webhooks import check_webhooks
from bench.common import BENCH_LIMITS, BENCH_TIER, Log
from devstack.postgres import PostgresServer
from devstack.processes import RedisServer, Stack

# What the run changes of the service's defaults, and why: the receivers
# listen on 127.0.0.1; the default retry schedule's later attempts are hours
# apart, past any bounded run (these add up to about 13 minutes).
SERVICE_SETTINGS = {"WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1", "WEBHOOK_RETRY_SCHEDULE": "0,5,15,30,60,120,240,300"}
STATIC_TEXTS, STATIC_FILES = 120, 24  # documents of the two collections no upload writes to during the load
STATIC, LIVE = ["static-text", "static-files"], ["live-a", "live-b"]
QUERY_POOL = 24  # distinct queries: searches repeat, and meet the result cache and each other
SEED = 20261204
MIN_QUIET_S = 30.0
SEED_TIMEOUT_S = 900.0


def run(options: dict, log: Log) -> dict:
    with tempfile.TemporaryDirectory(prefix="quarry-chaos-") as tmp:
        with chaos_service(Path(tmp), options["database"]) as (stack, postgres, key):
            try:
                return run_on(stack, postgres, key, options, log)
            finally:
                logs = [*stack.workdir.glob("*.log"), stack.redis.directory / "redis.log"]
                if postgres is not None:
                    logs.append(postgres.directory / "server.log")
                log(f"service logs kept in {keep_logs(logs, options['keep_logs'])}")


@contextmanager
def chaos_service(workdir: Path, database: str) -> Iterator[tuple[Stack, PostgresServer | None, str]]:
    """A migrated database (a private PostgreSQL the run may stop, or a SQLite
    file), a private Redis and a stack not yet started, with an API key."""
    from app.cli import upgrade_database

    postgres = PostgresServer().init().start() if database == "postgres" else None
    redis = RedisServer(workdir / "redis")
    stack: Stack | None = None
    try:
        url = postgres.url if postgres else f"sqlite:///{workdir / 'quarry.db'}"
        upgrade_database(url)
        redis.start()
        (workdir / "stack").mkdir()
        stack = Stack(workdir / "stack", url, redis, **BENCH_LIMITS, **SERVICE_SETTINGS)
        yield stack, postgres, stack.create_key("chaos", scopes="read,write", tier=BENCH_TIER, name="chaos")
    finally:
        if stack is not None:
            stack.stop()
        redis.stop()
        if postgres is not None:
            postgres.remove()


def run_on(stack: Stack, postgres: PostgresServer | None, key: str, options: dict, log: Log) -> dict:
    tally, ledger = Tally(), Ledger()

    naive_key = stack.create_key("chaos", scopes="read,write", tier="free", name="naive")

    def new_client() -> RecordingClient:
        return RecordingClient(stack.base_url, key, tally)

    def naive_client() -> RecordingClient:
        return RecordingClient(stack.base_url, naive_key, tally)

    stack.start_web(processes=2, threads=4)
    workers = [stack.start_worker(concurrency=1) for _ in range(2)]
    beat = stack.start_beat()
    client, corpus = new_client(), Corpus(options["dataset"], QUERY_POOL)
    seed_collections(client, ledger, corpus, log)
    pipelines = [p["name"] for p in client.get("/api/v1/pipelines").json() if p["status"] != "unavailable"]
    receivers = {name: ScriptedReceiver(name).start() for name in ("a", "b", "c")}
    registered_at = time.time()
    endpoints = register_endpoints(client, receivers)
    context = LoadContext(new_client, ledger, tally, corpus, STATIC, LIVE, pipelines, receivers["c"].url, naive_client)
    faults = Faults(stack, workers, beat, postgres, receivers, new_client, ledger, STATIC[0], log)
    load_s = options["minutes"] * 60
    log(f"load for {options['minutes']:g} min on {options['database']}: pipelines {', '.join(pipelines)}")
    threads = start_load(context, SEED)
    faults.start(load_s)
    watch_load(ledger, tally, load_s, log)
    context.stop.set()
    for thread in threads:
        thread.join(timeout=330)
    faults.restore()
    drained = drain(new_client, ledger, options["drain_minutes"] * 60, log)
    faults.wait_for_watches(timeout=120)
    figures = check_everything(stack, new_client, ledger, receivers, endpoints, registered_at, log)
    for receiver in receivers.values():
        receiver.receiver.stop()
    figures |= {
        "database": options["database"], "minutes": options["minutes"], "pipelines": pipelines,
        "service_settings": SERVICE_SETTINGS, "drain": drained,
        "faults": [asdict(record) for record in sorted(faults.records, key=lambda r: r.started_s or 0)],
        "answers": answer_figures(tally), "load_steps": {t.name: t.steps for t in threads},
        "naive_answers": {t.name: dict(t.answers) for t in threads if isinstance(t, NaiveClient)},
        "script_errors": tally.script_errors[:10], "service_log_tracebacks": log_tracebacks(stack.workdir),
        "server_errors": server_error_evidence(tally, stack.workdir),
    }  # fmt: skip
    return {**figures, "defects": defects(figures)}


def seed_collections(client: RecordingClient, ledger: Ledger, corpus: Corpus, log: Log) -> None:
    """The static collections (JSON texts; files of each kind), filled before
    the load and never written during it, and the empty live ones."""
    texts = [make_document(f"s{n:04d}", "json", corpus.text()) for n in range(STATIC_TEXTS)]
    files = [make_document(f"f{n:04d}", FILE_KINDS[n % len(FILE_KINDS)], corpus.text()) for n in range(STATIC_FILES)]
    jobs = [ledger.submit(client, "ingest", "static-text", "/api/v1/collections/static-text/documents", texts,
                          **upload_request(texts, None))]  # fmt: skip
    for half in (files[: STATIC_FILES // 2], files[STATIC_FILES // 2 :]):
        path = "/api/v1/collections/static-files/documents"
        jobs.append(ledger.submit(client, "ingest", "static-files", path, half, **upload_request(half, None)))
    for name in LIVE:
        answer = client.send("POST", "/api/v1/collections", json={"name": name})
        assert answer is not None and answer.status_code == 201, answer and answer.text
    for job in jobs:
        assert job is not None, "a seed upload was refused"
        job.seen_final = client.wait_final(job.id, SEED_TIMEOUT_S)
        assert job.seen_final and job.seen_final["status"] == "succeeded", job.seen_final
    log(f"seeded {STATIC_TEXTS} texts and {STATIC_FILES} files")


def register_endpoints(client: RecordingClient, receivers: dict[str, ScriptedReceiver]) -> dict[str, str]:
    """Receiver a gets every job event, b the final ones; c only gets jobs' own callback_url deliveries."""
    endpoints = {}
    for name, events in (("a", ["*"]), ("b", ["job.succeeded", "job.failed", "job.cancelled"])):
        answer = client.send("POST", "/api/v1/webhooks", json={"url": receivers[name].url("/hook"), "events": events})
        assert answer is not None and answer.status_code == 201, answer and answer.text
        endpoints[name] = answer.json()["id"]
    return endpoints


def watch_load(ledger: Ledger, tally: Tally, seconds: float, log: Log) -> None:
    ends = time.time() + seconds
    while (left := ends - time.time()) > 0:
        time.sleep(min(60.0, left))
        statuses = tally.statuses()
        log(f"{len(ledger.jobs)} jobs accepted; answers {dict(sorted(statuses.items()))}; "
            f"{sum(tally.connection_errors.values())} connection errors")  # fmt: skip


def drain(new_client: Callable[[], RecordingClient], ledger: Ledger, longest_s: float, log: Log) -> dict:
    """No load, no faults: wait until every accepted job is final and no
    webhook delivery is pending (at least MIN_QUIET_S, at most `longest_s`)."""
    client, began, open_ids, pending = new_client(), time.time(), set(ledger.jobs), None
    while True:
        now = chaos_checks.fetch_jobs(new_client, sorted(open_ids))
        open_ids -= {job_id for job_id, job in now.items() if job["status"] in TERMINAL}
        health = client.send("GET", "/health")
        if health is not None and health.headers.get("Content-Type", "").startswith("application/json"):
            pending = health.json()["components"].get("webhooks", {}).get("deliveries", {}).get("pending")
        waited = time.time() - began
        if (not open_ids and pending == 0 and waited >= MIN_QUIET_S) or waited >= longest_s:
            break
        log(f"draining: {len(open_ids)} jobs not final, {pending} deliveries pending")
        time.sleep(10.0)
    return {"seconds": round(time.time() - began, 1), "jobs_not_final": len(open_ids), "deliveries_pending": pending}


def check_everything(stack: Stack, new_client: Callable[[], RecordingClient], ledger: Ledger,
                     receivers: dict[str, ScriptedReceiver], endpoints: dict[str, str], registered_at: float,
                     log: Log) -> dict:  # fmt: skip
    client = new_client()
    final = chaos_checks.fetch_jobs(new_client, list(ledger.jobs))
    jobs = attempt(lambda: chaos_checks.check_jobs(ledger, final, client), log)
    log(f"jobs: {jobs.get('accepted')} accepted, {jobs.get('final')} final")
    documents = attempt(lambda: chaos_checks.check_documents(ledger, final, client, chaos_checks.ChunkOracle()), log)
    log(f"documents: {len(documents.get('lost', []))} lost, {documents.get('duplicates')} duplicated")
    webhooks = attempt(lambda: check_webhooks(ledger, final, receivers, endpoints, registered_at, client), log)
    for endpoint_id in endpoints.values():  # the re-runs below are not part of the run's events
        client.send("PATCH", f"/api/v1/webhooks/{endpoint_id}", json={"active": False})
    generations = {name: client.get(f"/api/v1/collections/{name}").json()["generation"] for name in STATIC + LIVE}
    searches = attempt(
        lambda: chaos_checks.check_searches(ledger, final, generations, new_client, stack.redis.url, log), log
    )
    return {"jobs": jobs, "documents": documents, "webhooks": webhooks, "searches": searches}


def attempt(check: Callable[[], dict], log: Log) -> dict:
    """A check's figures, or the error of this script that stopped it: a
    long run keeps the figures of its other checks."""
    try:
        return check()
    except Exception:  # noqa: BLE001 - reported in the figures and the defects
        log(f"a check failed: {traceback.format_exc(limit=6)}")
        return {"script_error": traceback.format_exc(limit=6)}


def answer_figures(tally: Tally) -> dict:
    statuses = tally.statuses()
    return {"requests": sum(statuses.values()), "by_status": dict(sorted(statuses.items())),
            "server_errors_500": statuses.get("500", 0), "other_5xx_but_503": len(tally.server_errors) - statuses.get("500", 0),
            "unavailable_503": statuses.get("503", 0), "connection_errors": sum(tally.connection_errors.values()),
            "connection_errors_by_route": dict(tally.connection_errors.most_common(10))}  # fmt: skip


def defects(r: dict) -> list[str]:
    """Every check that failed, in a sentence each (empty: a clean run)."""
    broken = [name for name in CHECKS if "script_error" in r[name]]
    if broken:
        return [f"the {name} check stopped on an error of this script" for name in broken]
    jobs, docs, searches = r["jobs"], r["documents"], r["searches"]
    found = [
        (len(jobs["not_final"]), "accepted jobs not final"), (len(jobs["moved_after_final"]), "final jobs that moved"),
        (len(docs["lost"]), "documents lost"), (docs["duplicates"], "documents duplicated or with wrong chunks"),
        (len(docs["unexpected"]), "documents no accepted upload carried"),
        (len(docs["refused_but_stored"]), "documents of refused uploads stored"),
        (len(docs["wrong_content"]), "documents with the wrong content"),
        (len(docs["count_disagreements"]), "collections whose counts disagree with their documents"),
        (searches["different"], "searches answered differently on a quiet re-run"),
        (r["answers"]["server_errors_500"], "answers with status 500"),
        (r["answers"]["other_5xx_but_503"], "answers with another 5xx but 503"),
        (len(r["script_errors"]), "errors of the run's own script"),
    ]  # fmt: skip
    for name, w in r["webhooks"].items():
        found += [(w["missing"], f"events missing at receiver {name}"),
                  (w["webhook_id_mismatches"], f"events under more than one webhook-id at receiver {name}"),
                  (w["reordered"], f"events out of order at receiver {name}"),
                  (w.get("final_events_not_written", 0), f"final job events never written for receiver {name}")]  # fmt: skip
    found += [(1, f"{f['fault']} at {f['started_s']} s not healed") for f in r["faults"] if f["heal_s"] is None]
    return [f"{count} {what}" for count, what in found if count]


def log_tracebacks(stackdir: Path, kinds: int = 12) -> dict:
    """The tracebacks in the service's logs, by process, logger, message and
    exception: while Redis or the database is down, some are expected."""
    found: Counter[str] = Counter()
    for path in sorted(stackdir.glob("*.log")):
        process = path.stem.rstrip("0123456789")
        for line in path.read_text(errors="replace").splitlines():
            if "Traceback (most recent" not in line:
                continue
            try:
                entry = json.loads(line)
                last = (entry.get("exc_info") or entry["message"]).strip().splitlines()[-1]
                found[anonymous(f"{process}: {entry.get('logger')}: {entry['message'][:80]} -> {last[:120]}")] += 1
            except (ValueError, KeyError):
                found[f"{process}: {line[:160]}"] += 1
    return {"total": sum(found.values()), "kinds": [[n, kind] for kind, n in found.most_common(kinds)]}


def anonymous(message: str) -> str:
    """A log message without its ids and ports, so that alike ones count together."""
    return re.sub(r"127\.0\.0\.1:\d+", "127.0.0.1:<port>", re.sub(r"\b[0-9a-f]{32}\b", "<id>", message))


def server_error_evidence(tally: Tally, stackdir: Path, examples: int = 10) -> list[dict]:
    """Each 5xx but 503 (at most `examples`): the request, the answer, and the
    service's log lines that carry its request id."""
    logs = {path.name: path.read_text(errors="replace").splitlines() for path in sorted(stackdir.glob("*.log"))}
    evidence = []
    for error in tally.server_errors[:examples]:
        lines = [f"{name}: {line}" for name, content in logs.items() for line in content if error["request_id"] in line]
        evidence.append({**error, "log_lines": lines[:30]})
    return evidence


def keep_logs(logs: list[Path], into: Path) -> Path:
    """The service's logs, kept past the temp dir for the evidence (var/ is not committed)."""
    target = into / time.strftime("%Y%m%d-%H%M%S")
    target.mkdir(parents=True, exist_ok=True)
    for log in logs:
        if log.exists():
            shutil.copy2(log, target / log.name)
    return target
