"""Load test of a running Quarry (`make load`, or `.venv/bin/python -m
locust -f bench/locustfile.py --host URL` for locust's web UI on :8089).

Each user, pausing 1-5 s between actions, searches (weight 8: a SciFact
test query, then polls the job as the API asks), ingests 1-3 short documents
(weight 1) or lists its recent jobs (weight 2). A job's time from submit to
the poll that saw it final is a request of type JOB; a job that does not
succeed is a failure. Before the users start, the run ingests a SciFact
slice (built-in texts without the dataset) into collections of its own,
deleted when locust quits. The API key is QUARRY_KEY, else `make run`'s
var/local-admin-key.

Three naive clients run beside them when named on the command line (`make
load NAIVE=1`), each with a free-tier key of its own, made for the run and
revoked after it: NaivePoller polls one job every 10 ms, ignoring
Retry-After; ConditionalPoller does the same with If-None-Match; QuotaBuster
submits searches in a tight loop, ignoring 429s.
Their requests are rows of their own, so the other users' figures show what
they cost everyone else.
"""

from __future__ import annotations

import logging
import os
import random
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import requests
from locust import FastHttpUser, HttpUser, between, constant, events, task

ROOT = Path(__file__).resolve().parent.parent
# `locust -f bench/locustfile.py` puts only bench/ on sys.path.
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from app.services.jobs import JobStatus  # noqa: E402
from bench import load as names  # noqa: E402  (locust's names for what it times)
from bench.common import DATASET, TOP_K  # noqa: E402
from bench.dataset import api_documents, load_scifact  # noqa: E402
from devstack.client import REFUSALS, Client, JobNotFinal, poll_until_final  # noqa: E402

log = logging.getLogger("quarry.load")

DEFAULT_HOST = "http://127.0.0.1:8000"
CORPUS_DOCS = 300
JOB_TIMEOUT_S = 120.0
# The setup's ingest embeds the whole slice at once.
SETUP_JOB_TIMEOUT_S = 900.0
# More than the worker has processes on a 2-core machine.
WARM_UP_SEARCHES = 4


# What the run searches and ingests when SciFact is not on this machine.
BUILT_IN_TEXTS = (
    "Vitamin D supplementation lowers the risk of respiratory infections in older adults.",
    "Regular aerobic exercise improves insulin sensitivity in people with type 2 diabetes.",
    "Sleep deprivation impairs memory consolidation in the hippocampus.",
    "Mediterranean diets are associated with lower rates of cognitive decline.",
)


@dataclass(frozen=True)
class Workload:
    """What every user of this run works with, settled once before they start."""

    key: str
    search_collection: str
    ingest_collection: str
    queries: list[str]
    naive_keys: dict[str, str]  # user class name -> its own free-tier key


workload: Workload  # set by prepare_workload (locust's init event)


def check_succeeded(job: dict) -> None:
    if job["status"] != JobStatus.SUCCEEDED:
        raise JobNotFinal(f"{job['type']} job {job['id']} {job['status']}: {job.get('error')}")


class QuarryUser(HttpUser):
    host = DEFAULT_HOST
    # A person reads what came back before the next action; at 64 users this
    # also keeps the shared key well under the enterprise rate limit.
    wait_time = between(1, 5)

    def on_start(self) -> None:
        self.client.headers["Authorization"] = f"Bearer {workload.key}"

    @task(8)
    def search(self) -> None:
        body = {"query": random.choice(workload.queries), "top_k": TOP_K}
        path = f"/api/v1/collections/{workload.search_collection}/search"
        cached = lambda job: bool((job.get("result") or {}).get("cached"))  # noqa: E731
        self.submit_and_wait(
            names.SEARCH_ROUTE, path, body, lambda job: names.CACHED_SEARCH_JOB if cached(job) else names.SEARCH_JOB
        )

    @task(1)
    def ingest(self) -> None:
        path = f"/api/v1/collections/{workload.ingest_collection}/documents"
        body = {"documents": short_documents(workload.queries)}
        self.submit_and_wait(names.INGEST_ROUTE, path, body, lambda _job: names.INGEST_JOB)

    @task(2)
    def list_jobs(self) -> None:
        self.client.get(names.JOB_LIST, name=names.JOB_LIST)

    def submit_and_wait(self, route: str, path: str, body: dict, job_name) -> None:
        """Submit, poll until final, and record the whole job (submit to the
        poll that saw it final) as a JOB row named job_name(job); a job that
        did not succeed is its failure. A refused submit is a failed request."""
        started = time.perf_counter()
        if (submitted := self.submit(route, path, body)) is None:
            return
        job, error = submitted.json(), None
        try:
            job, _polls = poll_until_final(self.poll, job, JOB_TIMEOUT_S)
            check_succeeded(job)
        except JobNotFinal as exc:
            error = exc
        elapsed_ms = (time.perf_counter() - started) * 1000
        self.record_job(job_name(job), elapsed_ms, error)
        if job_name(job) == names.SEARCH_JOB and error is None:
            self.record_job(names.SEARCH_JOB_IN_SERVICE, service_ms(job), None)

    def record_job(self, name: str, elapsed_ms: float, error: Exception | None) -> None:
        self.environment.events.request.fire(
            request_type="JOB", name=name, response_time=elapsed_ms, response_length=0, exception=error, context={}
        )

    def submit(self, route: str, path: str, body: dict) -> requests.Response | None:
        """The 202 answer; anything else is a failure, and a refused user
        waits as Retry-After asks before its next action."""
        with self.client.post(path, json=body, name=route, catch_response=True) as response:
            if response.status_code == 202:
                return response
            response.failure(f"answered {response.status_code}: {response.text[:200]}")
        if response.status_code in REFUSALS:
            time.sleep(float(response.headers.get("Retry-After", 1)))
        return None

    def poll(self, path: str, headers: dict) -> requests.Response:
        return self.client.get(path, headers=headers, name=names.JOB_ROUTE)


class NaiveUser(FastHttpUser):
    """A client that ignores every hint the API gives; one of each runs.

    They stand for clients on other machines, yet run on this one's cores:
    locust's FastHttpUser sends a request for a fraction of the CPU its
    requests-based HttpUser takes, so the run charges the service mostly
    for its own answers, not for the load generator's."""

    abstract = True
    fixed_count = 1
    wait_time = constant(0.01)

    def on_start(self) -> None:
        self.auth = {"Authorization": f"Bearer {workload.naive_keys[type(self).__name__]}"}

    def search_body(self) -> dict:
        return {"query": random.choice(workload.queries), "top_k": TOP_K}


class NaivePoller(NaiveUser):
    """Submits one search, then polls that job every 10 ms for the rest of the run."""

    job_path: str | None = None
    etag: str | None = None
    conditional = False
    poll_name = names.NAIVE_POLL

    @task
    def poll(self) -> None:
        if self.job_path is None:
            path = f"/api/v1/collections/{workload.search_collection}/search"
            response = self.client.post(path, json=self.search_body(), headers=self.auth, name=names.NAIVE_SUBMIT)
            if response.status_code == 202:
                self.job_path = response.headers["Location"]
            return
        headers = {**self.auth, "If-None-Match": self.etag} if self.etag else self.auth
        response = self.client.get(self.job_path, headers=headers, name=self.poll_name)
        if self.conditional and response.status_code == 200:
            self.etag = response.headers.get("ETag")


class ConditionalPoller(NaivePoller):
    """The same, sending the ETag it got: its 304s do not count against its rate limit."""

    conditional = True
    poll_name = names.NAIVE_CONDITIONAL_POLL


class QuotaBuster(NaiveUser):
    """Submits searches as fast as it can, whatever the answer."""

    @task
    def submit(self) -> None:
        path = f"/api/v1/collections/{workload.search_collection}/search"
        self.client.post(path, json=self.search_body(), headers=self.auth, name=names.NAIVE_SUBMIT)


NAIVE_USERS = (NaivePoller, ConditionalPoller, QuotaBuster)


def service_ms(job: dict) -> float:
    """A final job's time in the service, created to finished, by its own timestamps."""
    created, finished = (datetime.fromisoformat(job[name]) for name in ("created_at", "finished_at"))
    return (finished - created).total_seconds() * 1000


def short_documents(texts: list[str]) -> list[dict]:
    """1-3 short documents, each with text of its own so every ingest has
    something new to embed and index."""
    documents = []
    for _ in range(random.randint(1, 3)):
        doc_id = f"note-{uuid.uuid4().hex[:12]}"
        text = f"{random.choice(texts)} Noted in load-test {doc_id}."
        documents.append({"id": doc_id, "text": text, "metadata": {"source": "load-test"}})
    return documents


@events.init_command_line_parser.add_listener
def add_arguments(parser) -> None:
    parser.add_argument("--dataset", type=Path, default=DATASET, help="SciFact (built-in texts when absent)")
    parser.add_argument("--corpus-docs", type=int, default=CORPUS_DOCS, help="SciFact documents the users search")


@events.init.add_listener
def prepare_workload(environment, **_kwargs) -> None:
    global workload
    options = environment.parsed_options
    base_url = (environment.host or DEFAULT_HOST).rstrip("/")
    check_stack(base_url)
    key, key_source = api_key()
    client = Client(base_url, key)
    documents, queries = corpus_and_queries(options.dataset, options.corpus_docs)
    run = f"load-{time.strftime('%Y%m%d-%H%M%S')}"
    # Keys only for the naive clients this run has (making keys takes an admin key).
    naive = [user for user in NAIVE_USERS if user in environment.user_classes]
    naive_keys = {user.__name__: naive_key(client, f"{run}-{user.__name__}") for user in naive}
    workload = Workload(key, run, f"{run}-notes", queries, {name: secret for name, (secret, _id) in naive_keys.items()})
    log.info("Ingesting %d documents into %s at %s ...", len(documents), run, client.base_url)
    started = time.monotonic()
    run_setup_jobs(client, [(f"/api/v1/collections/{run}/documents", {"documents": documents})], key_source)
    run_setup_jobs(client, warm_up_searches(run), key_source)
    log.info("Setup took %.0f s; the users start now.", time.monotonic() - started)
    environment.events.quitting.add_listener(lambda **_: delete_collections(client, workload))
    environment.events.quitting.add_listener(lambda **_: revoke_keys(client, [i for _s, i in naive_keys.values()]))
    environment.events.quitting.add_listener(lambda **_: set_exit_code(environment))
    environment.events.quit.add_listener(lambda **_: print_summary(environment))


def api_key() -> tuple[str, str]:
    """The key, and where it came from: QUARRY_KEY, else `make run`'s file."""
    if os.environ.get("QUARRY_KEY"):
        return os.environ["QUARRY_KEY"], "QUARRY_KEY"
    key_file = Path(os.environ.get("QUARRY_VAR_DIR") or ROOT / "var") / "local-admin-key"
    if not key_file.is_file():
        raise SystemExit(f"No API key: set QUARRY_KEY, or start the stack with `make run` (it writes {key_file}).")
    return key_file.read_text().strip(), str(key_file)


def naive_key(client: Client, name: str) -> tuple[str, str]:
    """A free-tier key (secret, id) of the run's own, in the admin key's tenant."""
    response = client.post("/api/v1/keys", json={"name": name, "scopes": ["read", "write"], "tier": "free"})
    if response.status_code != 201:
        raise SystemExit(f"Could not make a key for {name}: {response.status_code} {response.text[:200]}")
    return response.json()["key"], response.json()["id"]


def revoke_keys(client: Client, key_ids: list[str]) -> None:
    for key_id in key_ids:
        client.delete(f"/api/v1/keys/{key_id}")


def check_stack(base_url: str) -> None:
    try:
        health = Client(base_url).get("/health")
    except requests.ConnectionError:
        raise SystemExit(f"No Quarry answers at {base_url}: start it with `make run` (or set --host / HOST).") from None
    if health.status_code != 200:
        raise SystemExit(f"Quarry at {base_url} is not healthy: /health answered {health.status_code}")


def corpus_and_queries(dataset: Path, n_docs: int) -> tuple[list[dict], list[str]]:
    """SciFact documents (those the test queries judge first) and the judged
    test queries; the built-in texts as both when SciFact is absent."""
    if not (dataset / "corpus.jsonl").is_file():
        log.warning("No SciFact at %s: searching built-in texts instead.", dataset)
        documents = [{"id": f"builtin-{n}", "text": text} for n, text in enumerate(BUILT_IN_TEXTS)]
        return documents, list(BUILT_IN_TEXTS)
    scifact = load_scifact(dataset, n_docs=n_docs)
    return api_documents(scifact.documents), [text for _qid, text in scifact.queries]


def run_setup_jobs(client: Client, submits: list[tuple[str, dict]], key_source: str) -> None:
    """Submits every (path, body) at once, then waits for each job; ends
    locust, saying why, when one is refused or does not succeed."""
    try:
        for job in [client.submit(path, body) for path, body in submits]:
            check_succeeded(poll_until_final(client.get, job, SETUP_JOB_TIMEOUT_S)[0])
    except RuntimeError as exc:  # a refused submit, or JobNotFinal
        raise SystemExit(f"Setup failed (key from {key_source}): {exc}") from None


def warm_up_searches(collection: str) -> list[tuple[str, dict]]:
    """Untimed searches, so the worker's processes have loaded the model and
    the index; the run never sends their queries, so none of its searches
    is answered from their cache."""
    path = f"/api/v1/collections/{collection}/search"
    return [(path, {"query": f"warm-up search {n}", "top_k": TOP_K}) for n in range(WARM_UP_SEARCHES)]


def delete_collections(client: Client, run: Workload) -> None:
    for name in (run.search_collection, run.ingest_collection):
        response = client.delete(f"/api/v1/collections/{name}")
        if response.status_code not in (202, 404):  # 404: no ingest ran
            log.warning("Could not delete collection %s: %s %s", name, response.status_code, response.text[:200])


def print_summary(environment) -> None:
    """One line after locust's tables: the numbers the load test is for."""
    stats, options = environment.stats, environment.parsed_options
    submit = stats.get(names.SEARCH_ROUTE, "POST")
    searches = stats.get(names.SEARCH_JOB, "JOB")
    cached = stats.get(names.CACHED_SEARCH_JOB, "JOB")
    errors = run_errors(environment)
    load = " ".join(f"{value:.2f}" for value in os.getloadavg())
    print(
        f"\nLoad test, {options.num_users} users: "
        f"search submit POST→202 p95 {submit.get_response_time_percentile(0.95):.0f} ms (target ≤ 20) · "
        f"search job submit→result p50 {searches.get_response_time_percentile(0.5):.0f} ms, "
        f"p95 {searches.get_response_time_percentile(0.95):.0f} ms over {searches.num_requests} jobs "
        f"(+{cached.num_requests} answered from the cache) · {http_requests_per_s(stats):.1f} HTTP requests/s · "
        f"errors {errors} (target 0) · load average {load}",
        flush=True,
    )
    if naive := naive_summary(stats):
        print(f"Naive clients: {naive}", flush=True)


def set_exit_code(environment) -> None:
    """Non-zero on errors of the run, not on the refusals the naive clients earn."""
    environment.process_exit_code = 1 if run_errors(environment) else 0


NAIVE_ROW_NAMES = {name for _method, name in names.NAIVE_ROWS.values()}


def run_errors(environment) -> int:
    """Failed requests and exceptions, the naive clients' refusals left out."""
    naive = sum(entry.num_failures for entry in environment.stats.entries.values() if entry.name in NAIVE_ROW_NAMES)
    return (
        environment.stats.total.num_failures - naive + sum(e["count"] for e in environment.runner.exceptions.values())
    )


def naive_summary(stats) -> str:
    rows = [stats.get(name, method) for method, name in names.NAIVE_ROWS.values()]
    return " · ".join(
        f"{row.method} {row.name}: {row.num_requests} requests, {row.num_failures} refused"
        for row in rows
        if row.num_requests
    )


def http_requests_per_s(stats) -> float:
    """HTTP requests (not the JOB rows, which time several of them) per second of the run."""
    http = sum(entry.num_requests for entry in stats.entries.values() if entry.method != "JOB")
    return http / max((stats.total.last_request_timestamp or stats.total.start_time) - stats.total.start_time, 1e-9)
