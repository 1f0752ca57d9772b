"""Quarry on several "hosts" of one machine: Linux network namespaces joined
by veth pairs to a bridge in the root namespace, each host with its own
address on a private /24, its own loopback and its own var/ directory (no
disk path is shared between hosts; the database stages uploads).

    data      PostgreSQL (the machine's binaries) and redis-server, bound to its address
    web       gunicorn (UPLOAD_STAGING=database)
    worker1   a Celery worker, its own INDEX_DIR
    worker2   another
    beat      Celery beat, and Flower (behind basic auth)

The hosts have a route to their subnet and nothing else: no packet they
send can leave the machine. The bridge's own address (.1) lets this
machine's root namespace reach them; a relay on 127.0.0.1
(devstack/forward.py) carries a loopback client's requests to the web host.

    python -m devstack.run_cluster  # `make cluster`: start, print the addresses and a key, Ctrl-C ends it

Needs root and iproute2; NamespacesUnavailable says why not otherwise.
Everything (processes, namespaces, veths, bridge, PostgreSQL's files) goes
in stop(), which start() calls itself when it fails; a cluster left behind
by a process that was killed is removed by the next one's start.

It starts in 20-50 s on 2 cores (the two workers loading the model)."""

from __future__ import annotations

import fcntl
import ipaddress
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from pathlib import Path

import sqlalchemy as sa

from devstack.client import Client
from devstack.netns import (
    PREFIX,
    STATE_DIR,
    Host,
    NamespacesUnavailable,
    add_bridge,
    add_namespace,
    free_subnet,
    ip,
    kill_namespace,
    namespaces_problem,
    remove_abandoned,
    remove_links,
)
from devstack.ports import free_port
from devstack.postgres import PostgresServer
from devstack.processes import BIN, PROJECT_ROOT, WEB_COMMAND, beat_command, create_key, worker_command
from devstack.waiting import wait_until

__all__ = ["Cluster", "Host", "NamespacesUnavailable", "namespaces_problem"]

WEB_PORT, REDIS_PORT, POSTGRES_PORT, FLOWER_PORT = 8000, 6379, 5432, 5555
FLOWER_AUTH = ("ops", "cluster")
FLOWER_COMMAND = [str(BIN / "celery"), "-A", "workers", "-q", "flower"]
# Host number (the last octet of its address) by role.
ROLES = {"data": 2, "web": 3, "beat": 4, "worker1": 11, "worker2": 12}
WORKERS = ("worker1", "worker2")
# Settings that name one host's paths or the cluster's servers: never
# inherited from the environment of whoever starts the cluster.
HOST_SPECIFIC = {
    "QUARRY_VAR_DIR",
    "INDEX_DIR",
    "UPLOAD_DIR",
    "PROMETHEUS_MULTIPROC_DIR",
    "DATABASE_URL",
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "RATELIMIT_STORAGE_URL",
    "HOST",
    "PORT",
    "TEST_BROKER_URL",
    "TEST_DATABASE_URL",
}


class Cluster(Client):
    """The topology of this module's docstring; a client of its web host
    (through the relay on 127.0.0.1) once started."""

    def __init__(self, workdir: Path, worker_concurrency: int = 1, remove_workdir: bool = False, **env: str) -> None:
        """`remove_workdir`: stop() removes `workdir` too (the hosts' logs and var/)."""
        problem = namespaces_problem()
        if problem:
            raise NamespacesUnavailable(problem)
        super().__init__("http://127.0.0.1:0")
        self.workdir = workdir
        self.remove_workdir = remove_workdir
        self.worker_concurrency = worker_concurrency
        self.settings = env
        self.tag = uuid.uuid4().hex[:5]
        self.bridge = f"qbr-{self.tag}"
        self.subnet: ipaddress.IPv4Network | None = None
        self.hosts: dict[str, Host] = {}
        self.workers: dict[str, Host] = {}  # by Celery node name
        self.postgres: PostgresServer | None = None
        self.relays: list[subprocess.Popen] = []
        self.web_url = self.flower_url = self.local_flower_url = ""
        # Seconds from the start of start() to the end of each phase.
        self.timings: dict[str, float] = {}

    # --- addresses ---

    def address(self, role: str) -> str:
        assert self.subnet is not None
        return str(self.subnet.network_address + ROLES[role])

    @property
    def database_url(self) -> str:
        """As the hosts reach PostgreSQL: over the bridge."""
        return f"postgresql+psycopg://postgres@{self.address('data')}:{POSTGRES_PORT}/postgres"

    @property
    def local_database_url(self) -> str:
        """As this (root) namespace reaches it: PostgreSQL's Unix socket."""
        assert self.postgres is not None
        return f"postgresql+psycopg://postgres@/postgres?host={self.postgres.directory}&port={POSTGRES_PORT}"

    @property
    def redis_url(self) -> str:
        return f"redis://{self.address('data')}:{REDIS_PORT}/0"

    @property
    def redis_socket(self) -> Path:
        return self.hosts["data"].directory / "redis.sock"

    # --- start and stop ---

    def start(self) -> Cluster:
        """Build everything; on any failure, remove what was built and raise."""
        try:
            self._start()
        except BaseException:
            self.stop(graceful=False)
            raise
        return self

    def _start(self) -> None:
        began = time.monotonic()

        def done(phase: str) -> None:
            self.timings[phase] = round(time.monotonic() - began, 1)

        STATE_DIR.mkdir(parents=True, exist_ok=True)
        # One cluster at a time picks its subnet and puts it on its bridge.
        with (STATE_DIR / ".lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            remove_abandoned()
            owned = f"{self.workdir}\n" if self.remove_workdir else ""
            (STATE_DIR / self.tag).write_text(f"{os.getpid()}\n{owned}")
            self.subnet = free_subnet()
            self._make_network()
        done("network")
        self._start_redis()
        # The workers load the model (the longest start) while PostgreSQL is
        # made; they touch the database only once they take a task, after
        # "ready", long after the migrations.
        for role in WORKERS:
            self._spawn_worker(self.hosts[role])
        self._start_postgres()
        done("data")
        self.hosts["web"].spawn(
            WEB_COMMAND,
            "web.log",
            HOST=self.address("web"),
            PORT=str(WEB_PORT),
            WEB_CONCURRENCY="1",
            WEB_THREADS="4",
        )
        beat = self.hosts["beat"]
        beat.spawn(
            beat_command(beat.var_dir / "celerybeat-schedule"),
            "beat.log",
        )
        # Flower beside beat, as the Procfile starts it, behind a password
        # because it listens beyond loopback.
        beat.spawn(
            [*FLOWER_COMMAND, f"--address={beat.address}", f"--port={FLOWER_PORT}"],
            "flower.log",
            FLOWER_BASIC_AUTH=":".join(FLOWER_AUTH),
        )
        self.flower_url = f"http://{beat.address}:{FLOWER_PORT}"
        self.web_url = f"http://{self.address('web')}:{WEB_PORT}"
        self.base_url = self._relay(f"{self.address('web')}:{WEB_PORT}", "relay.log")
        self.local_flower_url = self._relay(f"{beat.address}:{FLOWER_PORT}", "flower-relay.log")
        wait_until(self._web_answers, 60, what="the web host")
        done("web")
        wait_until(lambda: "beat: Starting" in beat.log("beat.log"), 60, what="beat")
        done("beat")
        for role in WORKERS:
            wait_until(lambda host=self.hosts[role]: " ready." in host.log("worker.log"), 180, what=f"{role}")
        done("workers")

    def _relay(self, target: str, log_name: str) -> str:
        """A relay from a loopback port of this machine to `target` (a
        host's address:port), for clients kept on loopback; its URL."""
        port = free_port()
        self.relays.append(
            subprocess.Popen(
                [str(BIN / "python"), "-m", "devstack.forward", f"127.0.0.1:{port}", target],
                cwd=PROJECT_ROOT,
                stdout=(self.workdir / log_name).open("ab"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )
        return f"http://127.0.0.1:{port}"

    def _make_network(self) -> None:
        assert self.subnet is not None
        prefix = self.subnet.prefixlen
        add_bridge(self.bridge, f"{self.subnet.network_address + 1}/{prefix}")
        base = {name: value for name, value in os.environ.items() if name not in HOST_SPECIFIC}
        base.update(
            DATABASE_URL=self.database_url,
            REDIS_URL=self.redis_url,
            LOG_LEVEL="INFO",
            PYTHONUNBUFFERED="1",
            UPLOAD_STAGING="database",
            **self.settings,
        )
        for number, role in enumerate(ROLES):
            namespace = f"{PREFIX}{self.tag}-{role}"
            directory = self.workdir / role
            var = directory / "var"
            host = Host(
                role,
                namespace,
                self.address(role),
                directory,
                {
                    **base,
                    "QUARRY_VAR_DIR": str(var),
                    "INDEX_DIR": str(var / "indexes"),
                    "UPLOAD_DIR": str(var / "uploads"),
                    "PROMETHEUS_MULTIPROC_DIR": str(var / "metrics"),
                },
            )
            var.mkdir(parents=True, exist_ok=True)
            self.hosts[role] = host
            add_namespace(namespace, self.bridge, f"qv{self.tag}{number}", f"{host.address}/{prefix}")

    def _start_redis(self) -> None:
        data = self.hosts["data"]
        data.spawn(
            [
                "redis-server",
                "--port",
                str(REDIS_PORT),
                "--bind",
                data.address,
                # Bound to the cluster's private subnet only, which nothing
                # off this machine reaches; the hosts connect without a password.
                "--protected-mode",
                "no",
                "--unixsocket",
                str(self.redis_socket),
                "--unixsocketperm",
                "700",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(data.var_dir),
            ],
            "redis.log",
        )

    def _start_postgres(self) -> None:
        data = self.hosts["data"]
        postgres = PostgresServer()
        self.postgres = postgres
        with (STATE_DIR / self.tag).open("a") as state:
            state.write(f"{postgres.directory}\n")
        postgres.port = POSTGRES_PORT  # the data host's own port space
        postgres.as_user = ["ip", "netns", "exec", data.namespace, *postgres.as_user]
        postgres.init()
        with (postgres.data / "pg_hba.conf").open("a") as hba:
            hba.write(f"host all all {self.subnet} trust\n")
        options = (
            f"-p {POSTGRES_PORT} -k {postgres.directory} -c listen_addresses={data.address} -c fsync=off"
            " -c max_connections=200"
        )
        log = str(postgres.directory / "server.log")
        postgres._run("pg_ctl", "-D", str(postgres.data), "-l", log, "-w", "-o", options, "start")
        wait_until(self._redis_answers, 10, what="redis-server")
        from app.cli import upgrade_database

        upgrade_database(self.local_database_url)

    def _spawn_worker(self, host: Host, **env: str) -> None:
        name = f"{host.role}@{host.namespace}"
        host.spawn(
            worker_command(name, self.worker_concurrency),
            "worker.log",
            WORKER_CONCURRENCY=str(self.worker_concurrency),
            **env,
        )
        self.workers[name] = host

    def _redis_answers(self) -> bool:
        try:
            with socket.socket(socket.AF_UNIX) as sock:
                sock.settimeout(0.5)
                sock.connect(str(self.redis_socket))
                sock.sendall(b"PING\r\n")
                return sock.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def _web_answers(self) -> bool:
        try:
            return self.http.get(self.base_url + "/health/live", timeout=1).status_code == 200
        except Exception:
            return False

    def stop(self, graceful: bool = False) -> None:
        """Every process (SIGTERM and a short wait when `graceful`, else
        SIGKILL), then the namespaces, their veths and the bridge."""
        for relay in self.relays:
            if relay.poll() is None:
                relay.kill()
                relay.wait(10)
        data = self.hosts.get("data")
        if self.postgres is not None and data is not None and (self.postgres.data / "postmaster.pid").exists():
            try:
                self.postgres._run("pg_ctl", "-D", str(self.postgres.data), "-m", "immediate", "-w", "stop")
            except (subprocess.SubprocessError, OSError):
                pass  # killed with the rest of its host below
        for host in self.hosts.values():
            kill_namespace(host.namespace, signal.SIGTERM if graceful else signal.SIGKILL)
        for host in self.hosts.values():
            host.kill(signal.SIGKILL, timeout=15 if graceful else 10)
        for host in self.hosts.values():
            ip("netns", "del", host.namespace, check=False)
        remove_links(self.tag)
        if self.postgres is not None:
            shutil.rmtree(self.postgres.directory, ignore_errors=True)
        if self.remove_workdir:
            shutil.rmtree(self.workdir, ignore_errors=True)
        (STATE_DIR / self.tag).unlink(missing_ok=True)

    # --- for tests and people ---

    def worker_host(self, role: str) -> tuple[str, Host]:
        """(Celery node name, host) of a worker host."""
        [(name, host)] = [(name, host) for name, host in self.workers.items() if host.role == role]
        return name, host

    def restart_worker(self, role: str, **env: str) -> None:
        """The worker host's worker killed and started again with `env` on
        top of its settings; back once the new one is ready."""
        _name, host = self.worker_host(role)
        host.kill()
        ready_before = host.log("worker.log").count(" ready.")
        self._spawn_worker(host, **env)
        wait_until(lambda: host.log("worker.log").count(" ready.") > ready_before, 180, what=f"{role} again")

    def consume(self, role: str, queue: str, on: bool = True) -> None:
        """Make a worker host take messages from `queue` again, or no more
        (Celery's remote control: add_consumer / cancel_consumer), through
        the broker's Unix socket."""
        from celery import Celery

        name, _host = self.worker_host(role)
        app = Celery(broker=f"redis+socket://{self.redis_socket}")
        try:
            control = app.control.add_consumer if on else app.control.cancel_consumer
            replies = control(queue, destination=[name], reply=True, limit=1, timeout=10)
        finally:
            app.close()
        answers = {node: answer for reply in replies or [] for node, answer in reply.items()}
        if list(answers) != [name] or "ok" not in answers[name]:
            raise RuntimeError(f"{'add' if on else 'cancel'}_consumer {queue} on {name}: {replies!r}")

    def sql(self, query: str, **params) -> list[tuple]:
        engine = sa.create_engine(self.local_database_url)
        try:
            with engine.connect() as conn:
                return [tuple(row) for row in conn.execute(sa.text(query), params)]
        finally:
            engine.dispose()

    def create_key(
        self, tenant: str, scopes: str = "read,write,admin", tier: str = "enterprise", name: str = "cluster"
    ) -> str:
        """An API key made in the cluster's database through the service calls."""
        return create_key(self.local_database_url, tenant, scopes, tier, name)
