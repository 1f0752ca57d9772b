"""The in-process tier: the Flask app through `app.test_client()`, a real
database and Redis, and an inline worker that runs what the Celery worker
would, by calling the same services its tasks call (the job runner, webhook
delivery). No Celery worker, no eager mode: the messages submit() sends go
to a real Redis broker, and the inline worker takes them from there.

`Client` has the small interface of devstack/client.py (`get`, `post`,
`wait_job`, `ingest`, `search`, ...) and answers requests-like responses, so
a test reads the same in either tier.
"""

from __future__ import annotations

import io
import json as jsonlib
import os
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from types import SimpleNamespace
from typing import Any

from flask import Flask

from app.extensions import celery, db
from app.services import jobs
from app.services.jobs import worker_queues
from app.services.keys import create_key, ensure_tenant
from app.services.webhooks import delivery as webhook_delivery
from devstack.client import JobCalls

BASE_URL = "http://localhost"
# The tenant of the tier's own admin key (the `api` fixture).
TENANT = "api"
JOB_TASKS = {kind.task: name for name, kind in jobs.KINDS.items()}


def cpus_per_test_process() -> int:
    """The cores jobs run in a test process may use: the machine's, shared
    between the suite's processes (pytest-xdist's workers) as a pool's
    processes share them."""
    processes = int(os.environ.get("PYTEST_XDIST_WORKER_COUNT", "1"))
    return max(1, (os.cpu_count() or 1) // processes)


class InlineWorker:
    """Takes the messages waiting on the broker's worker queues and runs
    them here, as the worker's tasks do (workers/tasks.py): a job through
    `jobs.run_job`, a webhook attempt through `delivery.deliver`. A message
    sent with a countdown is held until it is due, as a worker holds it; a
    job another runner holds is looked at again later, as the task retries.
    Beat's webhook sweep runs at its interval."""

    def __init__(self, sweep_interval: float) -> None:
        self.sweep_interval = sweep_interval
        self._held: list[tuple[float, str, list]] = []  # (due, task, args)
        self._lock = threading.Lock()
        self._paused = 0
        self._last_sweep = time.monotonic()

    @contextmanager
    def paused(self) -> Iterator[None]:
        """Nothing runs inside: submitted jobs stay queued, as with no worker."""
        with self._lock:
            self._paused += 1
        try:
            yield
        finally:
            with self._lock:
                self._paused -= 1

    def run_pending(self) -> int:
        """Run every message that is due now (and whatever those send in
        turn); returns how many ran."""
        ran = 0
        while not self._paused:
            due = self._take_due()
            if not due:
                break
            for task, args in due:
                self._run(task, args)
                ran += 1
        if not self._paused:
            self._sweep_if_due()
        return ran

    def _take_due(self) -> list[tuple[str, list]]:
        now = time.time()
        received: list[tuple[float, str, list]] = []
        with celery.connection_for_read() as connection:
            channel = connection.default_channel
            for queue in worker_queues():
                while (message := channel.basic_get(queue, no_ack=True)) is not None:
                    args, _kwargs, _embed = message.decode()
                    eta = message.headers.get("eta")
                    due = datetime.fromisoformat(eta).timestamp() if eta else now
                    received.append((due, message.headers["task"], args))
        with self._lock:
            self._held += received
            ready = [(task, args) for due, task, args in self._held if due <= now]
            self._held = [held for held in self._held if held[0] > now]
        return ready

    def _run(self, task: str, args: list) -> None:
        if task in JOB_TASKS:
            try:
                jobs.run_job(args[0], JOB_TASKS[task])
            except jobs.JobBusy as busy:
                if not busy.batched:  # the task retries once the other lease would have run out
                    with self._lock:
                        self._held.append((time.time() + busy.retry_after, task, args))
        elif task == "quarry.webhooks.deliver":
            webhook_delivery.deliver(args[0])
        elif task == "quarry.webhooks.sweep_due_deliveries":
            self._sweep()
        elif task == "quarry.maintenance.recover_stuck_jobs":
            with db.session_scope() as session:
                jobs.recover_stuck_jobs(session)
        else:
            raise AssertionError(f"the inline worker cannot run {task}")

    def _sweep_if_due(self) -> None:
        if time.monotonic() - self._last_sweep >= self.sweep_interval:
            self._sweep()

    def _sweep(self) -> None:
        self._last_sweep = time.monotonic()
        with db.session_scope() as session:
            webhook_delivery.sweep_due_deliveries(session)

    def discard_all(self) -> None:
        """Forget every message waiting, as a broker that lost its data."""
        discard_queued()
        with self._lock:
            self._held.clear()


def discard_queued() -> None:
    """Drop every message waiting on the worker queues of the bound broker."""
    with celery.connection_for_write() as connection:
        channel = connection.default_channel
        for queue in worker_queues():
            while channel.basic_get(queue, no_ack=True) is not None:
                pass


class Response:
    """The parts of a `requests.Response` the tests read, over Werkzeug's
    test response. `content` is the body as sent (gzip stays gzip)."""

    def __init__(self, method: str, url: str, raw) -> None:
        self.raw = raw
        self.status_code: int = raw.status_code
        self.headers = raw.headers
        self.content: bytes = raw.get_data()
        self.request = SimpleNamespace(method=method, url=url)

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", errors="replace")

    @property
    def ok(self) -> bool:
        return self.status_code < 400

    def json(self) -> Any:
        return jsonlib.loads(self.content)


class Client(JobCalls):
    """A client of the app in this process, sending one API key (or none).
    Every GET first lets the inline worker run what is due, so polling a job
    sees it finish as a client of the real service would."""

    poll_interval = 0.05

    def __init__(self, app: Flask, worker: InlineWorker, key: str | None = None, runs_jobs: bool = True) -> None:
        self.app = app
        self.worker = worker
        self.runs_jobs = runs_jobs
        self.base_url = BASE_URL
        self.headers: dict[str, str] = {}
        if key:
            self.authenticate(key)
        self._test_client = app.test_client()

    # requests.Session's shape: `client.http.get(client.url(path))` works as in devstack.
    @property
    def http(self) -> Client:
        return self

    def url(self, path: str) -> str:
        return self.base_url + path

    def authenticate(self, key: str) -> None:
        self.headers["Authorization"] = f"Bearer {key}"

    def request(
        self,
        method: str,
        url: str,
        *,
        params: dict | None = None,
        json: Any = None,
        data: Any = None,
        files: list | None = None,
        headers: dict | None = None,
        timeout: float | None = None,
        allow_redirects: bool = True,
    ) -> Response:
        path = url.removeprefix(self.base_url)
        sent = {name: value for name, value in {**self.headers, **(headers or {})}.items() if value is not None}
        kwargs: dict[str, Any] = {"headers": sent, "query_string": params, "follow_redirects": allow_redirects}
        if files is not None:
            form: dict[str, Any] = dict(data or {})
            for field, (filename, content, content_type) in files:
                form.setdefault(field, []).append((io.BytesIO(content), filename, content_type))
            kwargs.update(data=form, content_type="multipart/form-data")
        elif json is not None:
            kwargs["json"] = json
        elif data is not None:
            kwargs["data"] = data
        if method.upper() == "GET" and self.runs_jobs:
            self.worker.run_pending()
        raw = self._test_client.open(path, method=method.upper(), **kwargs)
        return Response(method.upper(), url, raw)

    def get(self, path: str, **kwargs) -> Response:
        return self.request("GET", self._full(path), **kwargs)

    def post(self, path: str, **kwargs) -> Response:
        return self.request("POST", self._full(path), **kwargs)

    def patch(self, path: str, **kwargs) -> Response:
        return self.request("PATCH", self._full(path), **kwargs)

    def delete(self, path: str, **kwargs) -> Response:
        return self.request("DELETE", self._full(path), **kwargs)

    def options(self, path: str, **kwargs) -> Response:
        return self.request("OPTIONS", self._full(path), **kwargs)

    def _full(self, path: str) -> str:
        return path if path.startswith(self.base_url) else self.url(path)

    # --- keys, as devstack.processes.Stack ---

    def create_key(
        self, tenant: str, scopes: str = "read,write,admin", tier: str = "enterprise", name: str = "test"
    ) -> str:
        """A key made through the service layer (the CLI's path, without its process)."""
        with db.session_scope() as session:
            owner = ensure_tenant(session, tenant)
            _key, plaintext = create_key(session, owner.id, name=name, scopes=scopes.split(","), tier=tier)
        return plaintext

    def client(self, key: str | None = None) -> Client:
        return Client(self.app, self.worker, key)

    def watching(self) -> Client:
        """This client, its polls running nothing: for a test whose jobs run
        in a thread of their own while it watches."""
        watcher = Client(self.app, self.worker, runs_jobs=False)
        watcher.headers = dict(self.headers)
        return watcher
