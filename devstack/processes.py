"""The service's real processes: a private redis-server, a migrated
database, and gunicorn web + Celery worker processes (`Stack`), each on a
free port under a directory of its own."""

from __future__ import annotations

import functools
import os
import signal
import socket
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import requests
import sqlalchemy as sa
from sqlalchemy.engine import make_url

from app.services.jobs import worker_queues
from devstack.client import Client
from devstack.ports import free_port
from devstack.rabbitmq import VirtualHost
from devstack.waiting import wait_until

__all__ = ["BIN", "PROJECT_ROOT", "Client", "RedisServer", "Stack", "create_database", "free_port", "wait_until"]

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent


class RedisServer:
    """A private redis-server on a free port; can be stopped and started again."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self.port = free_port()
        self.process: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> RedisServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        self.process = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(self.directory),
            ],
            stdout=(self.directory / "redis.log").open("ab"),
            stderr=subprocess.STDOUT,
        )
        wait_until(self._answers, 10, what="redis-server")
        return self

    def _answers(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=0.5) as sock:
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.process and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(10)
        self.process = None


def create_database(directory: Path) -> tuple[str, Any]:
    """A new, migrated database: PostgreSQL when TEST_DATABASE_URL is set,
    else a SQLite file. Returns its URL and a function that drops it."""
    from app.cli import upgrade_database

    base = os.environ.get("TEST_DATABASE_URL", "").strip()
    if not base:
        url = f"sqlite:///{directory / 'quarry.db'}"
        upgrade_database(url)
        return url, lambda: None
    base_url = make_url(base)
    if base_url.drivername in ("postgres", "postgresql"):
        base_url = base_url.set(drivername="postgresql+psycopg")
    name = f"quarry_test_{uuid.uuid4().hex[:12]}"
    admin = sa.create_engine(base_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    url = base_url.set(database=name).render_as_string(hide_password=False)
    upgrade_database(url)

    def drop() -> None:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()

    return url, drop


def _says_ready(worker_log: Path) -> bool:
    return b" ready." in worker_log.read_bytes()


def create_key(database_url: str, tenant: str, scopes: str, tier: str, name: str) -> str:
    """A key made in that database through the service calls `flask keys
    create` makes (the CLI itself: tests/api/test_cli.py and `make run`),
    without starting a process for it."""
    from dataclasses import replace

    from sqlalchemy.orm import Session

    from app.config import Settings
    from app.services import keys

    engine = sa.create_engine(replace(Settings.from_env(), database_url=database_url).normalized_database_url())
    try:
        with Session(engine) as session:
            owner = keys.ensure_tenant(session, tenant)
            _key, plaintext = keys.create_key(session, owner.id, name=name, scopes=scopes.split(","), tier=tier)
    finally:
        engine.dispose()
    return plaintext


# The service's processes' command lines, for a Stack and a Cluster's hosts alike.
WEB_COMMAND = [str(BIN / "gunicorn"), "wsgi:app", "-c", "gunicorn.conf.py"]


def worker_command(name: str, concurrency: int) -> list[str]:
    """A Celery worker named `name` on every job queue (no gossip or mingle:
    a test's workers need not know each other)."""
    return [
        str(BIN / "celery"),
        "-A",
        "workers",
        "worker",
        "-Q",
        ",".join(worker_queues()),
        "--concurrency",
        str(concurrency),
        "-n",
        name,
        "--without-gossip",
        "--without-mingle",
        "--loglevel",
        "INFO",
    ]


def beat_command(schedule: Path) -> list[str]:
    return [str(BIN / "celery"), "-A", "workers", "beat", "--loglevel", "INFO", "--schedule", str(schedule)]


# The sweeps a worker sends itself as it starts (workers/signals.py).
START_UP_SWEEPS = (b"quarry.maintenance.recover_stuck_jobs[", b"quarry.webhooks.sweep_due_deliveries[")


def _start_up_sweeps_done(worker_log: Path) -> bool:
    lines = worker_log.read_bytes().splitlines()
    return all(any(task in line and b"succeeded" in line for line in lines) for task in START_UP_SWEEPS)


class Stack(Client):
    """The service's web and worker processes against one database and Redis."""

    def __init__(self, workdir: Path, database_url: str, redis: RedisServer, **env: str) -> None:
        self.workdir = workdir
        self.redis = redis
        self.env = {
            # Each stack's processes find their metrics directory under their
            # own QUARRY_VAR_DIR, as deployed processes do.
            **{name: value for name, value in os.environ.items() if name != "PROMETHEUS_MULTIPROC_DIR"},
            "QUARRY_VAR_DIR": str(workdir / "var"),
            "DATABASE_URL": database_url,
            "REDIS_URL": redis.url,
            "LOG_LEVEL": "INFO",
            "PYTHONUNBUFFERED": "1",
            **env,
        }
        # TEST_BROKER_URL (a RabbitMQ server): the stack's broker is a virtual
        # host of its own there; Redis stays its cache and rate-limit store.
        self.vhost: VirtualHost | None = None
        if os.environ.get("TEST_BROKER_URL") and "CELERY_BROKER_URL" not in env:
            self.vhost = VirtualHost(os.environ["TEST_BROKER_URL"])
            self.env["CELERY_BROKER_URL"] = self.vhost.url
        self.port = free_port()
        super().__init__(f"http://127.0.0.1:{self.port}")
        self.processes: list[subprocess.Popen] = []
        self.workers: dict[str, subprocess.Popen] = {}  # by Celery node name
        self._starting: list = []  # waits for the processes started with wait=False

    def _spawn(self, args: list[str], log_name: str, **env: str) -> subprocess.Popen:
        log = (self.workdir / log_name).open("ab")
        process = subprocess.Popen(
            args,
            cwd=PROJECT_ROOT,
            env={**self.env, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so kill reaches the children
        )
        self.processes.append(process)
        return process

    def start_web(self, processes: int = 1, threads: int = 4, wait: bool = True) -> Stack:
        """`wait=False`: return at once; wait_started() waits for it to answer
        (so that the stack's other processes start meanwhile)."""
        self._spawn(
            WEB_COMMAND,
            "web.log",
            PORT=str(self.port),
            HOST="127.0.0.1",
            WEB_CONCURRENCY=str(processes),
            WEB_THREADS=str(threads),
        )
        self._starting.append(lambda: wait_until(self._web_answers, 60, what="the web process"))
        if wait:
            self.wait_started()
        return self

    def wait_started(self) -> None:
        """Wait until every process started with `wait=False` is ready."""
        while self._starting:
            self._starting.pop(0)()

    def _web_answers(self) -> bool:
        try:
            return self.http.get(self.base_url + "/health/live", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def wait_start_up_sweeps(self, timeout: float = 60) -> None:
        """Until every worker has finished the sweeps it sent itself on start.
        For tests that stop Redis next: the broker going away while a
        message is unacknowledged can end the worker ("Unrecoverable error"
        in kombu's Redis transport, restoring it without a connection)."""
        for number in range(1, len(self.workers) + 1):
            log_path = self.workdir / f"worker{number}.log"
            wait_until(functools.partial(_start_up_sweeps_done, log_path), timeout, what="the start-up sweeps")

    def start_worker(self, concurrency: int = 1, **env: str) -> subprocess.Popen:
        """`env`: settings of this worker's own, beside the stack's (another UPLOAD_DIR, say)."""
        [process] = self.start_workers(1, concurrency, **env)
        return process

    def start_workers(self, count: int, concurrency: int = 1, **env: str) -> list[subprocess.Popen]:
        """`count` workers started side by side (each loads the model): ready when all are."""
        started = [self._spawn_worker(concurrency, **env) for _ in range(count)]
        for log_path, _process in started:
            wait_until(functools.partial(_says_ready, log_path), 120, what="the Celery worker")
        return [process for _log_path, process in started]

    def _spawn_worker(self, concurrency: int, **env: str) -> tuple[Path, subprocess.Popen]:
        number = len(self.workers) + 1
        log_name = f"worker{number}.log"
        name = f"test{number}-{uuid.uuid4().hex[:6]}@{socket.gethostname()}"
        process = self._spawn(
            worker_command(name, concurrency),
            log_name,
            **{"WORKER_CONCURRENCY": str(concurrency), **env},
        )
        self.workers[name] = process
        return self.workdir / log_name, process

    def start_flower(self, **env: str) -> str:
        """Flower on a free port, as the Procfile starts it; returns its URL."""
        port = free_port()
        self._spawn(
            [str(BIN / "celery"), "-A", "workers", "flower", f"--port={port}"],
            "flower.log",
            FLOWER_PORT=str(port),
            **env,
        )
        url = f"http://127.0.0.1:{port}"

        def answers() -> bool:
            try:
                return self.http.get(url + "/healthcheck", timeout=1).status_code == 200
            except requests.RequestException:
                return False

        wait_until(answers, 60, what="Flower")
        return url

    def start_beat(self, wait: bool = True) -> subprocess.Popen:
        """`wait=False`: as for start_web."""
        log_path = self.workdir / "beat.log"
        process = self._spawn(
            beat_command(self.workdir / "celerybeat-schedule"),
            "beat.log",
        )
        self._starting.append(
            lambda: wait_until(
                lambda: log_path.exists() and b"beat: Starting" in log_path.read_bytes(), 60, what="Celery beat"
            )
        )
        if wait:
            self.wait_started()
        return process

    def pause_queue(self, queue: str) -> None:
        """The stack's workers take no more messages from `queue`: they wait
        there, as with no worker running, until resume_queue. (Celery's
        remote control, as `celery control cancel_consumer` sends it.)"""
        self._control("cancel_consumer", queue)

    def resume_queue(self, queue: str) -> None:
        """The stack's workers take messages from `queue` again."""
        self._control("add_consumer", queue)

    def _control(self, command: str, queue: str) -> None:
        from celery import Celery

        waiting = [name for name, process in self.workers.items() if process.poll() is None]
        answers: dict[str, dict] = {}
        app = Celery(broker=self.env.get("CELERY_BROKER_URL") or self.redis.url)
        try:
            # A broadcast a busy machine's worker missed or answered late is
            # sent again to those that did not answer (both commands may be
            # repeated); the call returns as soon as all have answered.
            for _attempt in range(3):
                send = getattr(app.control, command)
                replies = send(queue, destination=waiting, reply=True, limit=len(waiting), timeout=15)
                answers.update(answer for reply in replies or [] for answer in reply.items())
                waiting = [name for name in waiting if name not in answers]
                if not waiting:
                    break
        finally:
            app.close()
        if waiting or any("ok" not in answer for answer in answers.values()):
            raise RuntimeError(f"{command} {queue}: no answer from {waiting}; answers: {answers!r}")

    def kill(self, process: subprocess.Popen, sig: int = signal.SIGKILL) -> None:
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        process.wait(30)

    def stop(self, graceful: bool = True) -> None:
        """Stop every process: SIGTERM and wait (each finishes its work), or
        at once (SIGKILL) when nothing they would finish matters any more."""
        for process in reversed(self.processes):
            if process.poll() is None:
                try:
                    os.killpg(process.pid, signal.SIGTERM if graceful else signal.SIGKILL)
                except ProcessLookupError:
                    continue
        for process in self.processes:
            try:
                process.wait(20)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)

    # --- keys and clients ---

    def flask(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(BIN / "flask"), "--app", "wsgi", *args],
            cwd=PROJECT_ROOT,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=120,
        )

    def create_key(
        self, tenant: str, scopes: str = "read,write,admin", tier: str = "enterprise", name: str = "test"
    ) -> str:
        return create_key(self.env["DATABASE_URL"], tenant, scopes, tier, name)

    def client(self, key: str | None = None) -> Client:
        return Client(self.base_url, key)
