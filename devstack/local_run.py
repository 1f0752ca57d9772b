"""What `make run` (scripts/run-local.sh) does besides starting the Procfile's
processes: it checks the web and Flower ports before anything starts, keeps a
Redis of this checkout's own, and says when the service is ready.

    python -m devstack.local_run check-ports       # exit 1, saying why, if PORT or FLOWER_PORT is taken
    python -m devstack.local_run redis             # prints this checkout's REDIS_URL, starting its Redis
    python -m devstack.local_run stop-redis        # stops it
    python -m devstack.local_run wait-ready KEY    # one line once the web and a worker answer
"""

from __future__ import annotations

import argparse
import ipaddress
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import httpx
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from app.config import Settings, local_redis_port
from devstack.ports import bind_problem, free_port, next_free_port
from devstack.waiting import wait_until

FREE, OURS = "free", "ours"
READY_TIMEOUT_SECONDS = 180


def _client(port: int) -> redis.Redis:
    # No retries: something that is not Redis never answers, and a Redis
    # told to shut down is meant to drop the connection.
    return redis.Redis(port=port, socket_timeout=2, socket_connect_timeout=1, retry=Retry(NoBackoff(), 0))


class LocalRedis:
    """This checkout's Redis: a redis-server whose data directory is
    <var>/redis, which is how it is told apart from any other Redis (another
    checkout's, another project's) that may answer on the same port."""

    def __init__(self, var_dir: Path) -> None:
        self.directory = (var_dir / "redis").resolve()
        self.port_file = self.directory / "port"

    def holder(self, port: int) -> str:
        """FREE, OURS, or what else answers on the port."""
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
        except OSError:
            return FREE
        client = _client(port)
        try:
            directory = client.config_get("dir").get("dir")
        except redis.RedisError:
            return "something that is not this checkout's Redis"
        finally:
            client.close()
        return OURS if directory == str(self.directory) else f"another Redis (its data in {directory})"

    def ensure(self, wanted: int) -> int:
        """The port of this checkout's Redis, started if it is not running:
        on `wanted` unless something else answers there, then on a free port.
        The port is recorded for the next run and for app/config.py."""
        self.directory.mkdir(parents=True, exist_ok=True)
        recorded = local_redis_port(self.directory.parent)
        if recorded != wanted and self.holder(recorded) == OURS:
            _client(recorded).shutdown()  # two servers must never share one data directory
        port = wanted
        for _attempt in range(5):
            holder = self.holder(port)
            if holder == FREE:
                holder = self._start(port)
            if holder == OURS:
                break
            print(f"Port {port} answers with {holder}.", file=sys.stderr)
            port = free_port()
        else:
            raise SystemExit("Could not start this checkout's Redis; see " + str(self.directory / "redis.log"))
        if port != wanted:
            print(
                f"This checkout's Redis runs on port {port} instead (recorded in {self.port_file}).",
                file=sys.stderr,
            )
        self.port_file.write_text(f"{port}\n")
        return port

    def _start(self, port: int) -> str:
        """Starts redis-server on the port; returns who holds it then (another
        program may have taken it in the meantime)."""
        subprocess.run(
            [
                "redis-server",
                "--port",
                str(port),
                "--bind",
                "127.0.0.1",
                "--dir",
                str(self.directory),
                "--daemonize",
                "yes",
                "--pidfile",
                str(self.directory / "redis.pid"),
                "--logfile",
                str(self.directory / "redis.log"),
                "--appendonly",
                "yes",
                "--save",
                "",
            ],
            check=True,
        )

        def answered() -> str | None:
            holder = self.holder(port)
            return None if holder == FREE else holder

        try:
            return wait_until(answered, 10, what="redis-server")
        except TimeoutError:
            return FREE

    def stop(self) -> None:
        port = local_redis_port(self.directory.parent)
        if self.holder(port) == OURS:
            _client(port).shutdown()


def _wanted_redis_port() -> int:
    """QUARRY_REDIS_PORT, else the port recorded by the last run, else 6391."""
    value = os.environ.get("QUARRY_REDIS_PORT", "").strip()
    if value:
        return int(value)
    return local_redis_port(Settings.from_env().var_dir)


def _flower_address() -> tuple[str, int]:
    """Where the Procfile's Flower listens (the same defaults)."""
    return os.environ.get("FLOWER_HOST") or "127.0.0.1", int(os.environ.get("FLOWER_PORT") or 5555)


def check_ports() -> int:
    flower_host, flower_port = _flower_address()
    if Settings.from_env().web_port == flower_port:
        print(f"PORT and FLOWER_PORT are both {flower_port}: set one of them to another port.", file=sys.stderr)
        return 1
    problems = 0
    for what, host, port, variables in (
        ("the web", Settings.from_env().web_host, Settings.from_env().web_port, ("PORT", "HOST")),
        ("Flower", flower_host, flower_port, ("FLOWER_PORT", "FLOWER_HOST")),
    ):
        problem = bind_problem(host, port)
        if problem is None:
            continue
        problems += 1
        reason, change = problem
        remedy = (
            f"set {variables[0]} to another port ({next_free_port(host, port)} is free)"
            if change == "port"
            else f"set {variables[1]} to an address of this machine"
        )
        print(f"Cannot start {what} on {host}:{port}: {reason}; {remedy}.", file=sys.stderr)
    return 1 if problems else 0


def _url(host: str, port: int) -> str:
    """How to reach a server listening on host:port from this machine."""
    if host in ("", "0.0.0.0", "::"):
        host = "127.0.0.1"
    elif ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}"


def _reachable_from_elsewhere(host: str) -> bool:
    try:
        return not ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host not in ("localhost",)


def _serving(web: str) -> bool:
    """The web answers /health and reports at least one live worker."""
    try:
        response = httpx.get(f"{web}/health", timeout=5)
        return response.status_code == 200 and response.json()["components"]["workers"]["count"] > 0
    except (httpx.HTTPError, ValueError, KeyError):
        return False


def wait_ready(key_file: Path, timeout: float = READY_TIMEOUT_SECONDS) -> int:
    web = _url(Settings.from_env().web_host, Settings.from_env().web_port)
    # Beside the key: the `quarry` command line finds both with no setup.
    (key_file.parent / "local-url").write_text(web + "\n")
    flower_host, flower_port = _flower_address()
    try:
        wait_until(lambda: _serving(web), timeout, interval=1, what="the web and a worker")
    except TimeoutError:
        print(
            f"Quarry is not ready after {timeout:.0f} s: {web}/health does not answer with a live worker; "
            "see the lines above.",
            file=sys.stderr,
        )
        return 1
    reach = [
        f"{what} listens on {host} (reachable from other machines)"
        for what, host in (("the web", Settings.from_env().web_host), ("Flower", flower_host))
        if _reachable_from_elsewhere(host)
    ]
    print(
        f"\nQuarry is ready: API {web}/api/v1 · docs {web}/docs · health {web}/health · "
        f"Flower {_url(flower_host, flower_port)} · admin key {key_file.read_text().strip()} "
        f"(in {key_file})" + "".join(f" · {line}" for line in reach) + " · Ctrl-C stops everything\n",
        flush=True,
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    # Ctrl-C reaches this helper too: it ends without a traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    parser = argparse.ArgumentParser(
        prog="python -m devstack.local_run", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    commands = parser.add_subparsers(dest="command", required=True)
    commands.add_parser("check-ports")
    commands.add_parser("redis")
    commands.add_parser("stop-redis")
    commands.add_parser("wait-ready").add_argument("key_file", type=Path)
    args = parser.parse_args(argv)
    local_redis = LocalRedis(Settings.from_env().var_dir)
    if args.command == "check-ports":
        return check_ports()
    if args.command == "redis":
        print(f"redis://127.0.0.1:{local_redis.ensure(_wanted_redis_port())}/0")
        return 0
    if args.command == "stop-redis":
        local_redis.stop()
        return 0
    return wait_ready(args.key_file)


if __name__ == "__main__":
    sys.exit(main())
