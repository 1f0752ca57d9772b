"""`make run` next to another instance on the same machine: it never shares
that instance's Redis (whose worker would take its jobs), checks its ports
before starting anything, says once when it is ready, and ends on Ctrl-C
without a `make` error."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import redis
from celery import Celery

from devstack.processes import PROJECT_ROOT, Client, RedisServer, free_port, wait_until

pytestmark = pytest.mark.integration

# Settings a developer's shell may hold that would change what is tested.
_OUTSIDE_SETTINGS = (
    "REDIS_URL",
    "CELERY_BROKER_URL",
    "DATABASE_URL",
    "HOST",
    "PORT",
    "FLOWER_HOST",
    "FLOWER_PORT",
    "LOG_LEVEL",
    "LOG_FORMAT",
    "QUARRY_REDIS_PORT",
    "PROMETHEUS_MULTIPROC_DIR",
)


def checkout_env(var_dir: Path, **env: str) -> dict[str, str]:
    """The environment of a `make run` whose checkout keeps its data in var_dir."""
    base = {name: value for name, value in os.environ.items() if name not in _OUTSIDE_SETTINGS}
    return {**base, "QUARRY_VAR_DIR": str(var_dir), "PYTHONUNBUFFERED": "1", **env}


def local_run(var_dir: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "devstack.local_run", *args],
        cwd=PROJECT_ROOT,
        env=checkout_env(var_dir, **env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def start_redis(var_dir: Path, **env: str) -> tuple[str, str]:
    """This checkout's Redis URL, and what the helper said on the way."""
    done = local_run(var_dir, "redis", **env)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip(), done.stderr


def answers(url: str) -> bool:
    try:
        return redis.Redis.from_url(url, socket_timeout=1).ping()
    except redis.RedisError:
        return False


def test_a_second_checkout_on_the_same_port_gets_a_redis_and_queues_of_its_own(tmp_path):
    port = str(free_port())
    first, second = tmp_path / "first" / "var", tmp_path / "second" / "var"
    try:
        first_url, said = start_redis(first, QUARRY_REDIS_PORT=port)
        assert first_url == f"redis://127.0.0.1:{port}/0" and said == ""
        second_url, said = start_redis(second, QUARRY_REDIS_PORT=port)
        assert second_url != first_url
        assert f"Port {port} answers with another Redis (its data in {(first / 'redis').resolve()})" in said
        assert str(second / "redis" / "port") in said

        # A job the second instance queues waits in its own Redis, where only
        # its own worker looks: none of it reaches the first one's.
        Celery("second", broker=second_url).send_task("quarry.search", args=["some-job-id"], queue="search")
        assert redis.Redis.from_url(second_url).llen("search") == 1
        assert redis.Redis.from_url(first_url).keys("*") == []

        # Later runs (and every process of the checkout, through app/config.py)
        # find the same Redis again, the first one's port being still taken.
        assert start_redis(first, QUARRY_REDIS_PORT=port) == (first_url, "")
        assert start_redis(second) == (second_url, "")
        configured = subprocess.run(
            [sys.executable, "-c", "from app.config import Settings; print(Settings.from_env().redis_url)"],
            cwd=PROJECT_ROOT,
            env=checkout_env(second),
            capture_output=True,
            text=True,
            timeout=60,
            check=True,
        )
        assert configured.stdout.strip() == second_url
    finally:
        for var_dir in (first, second):
            local_run(var_dir, "stop-redis")
    assert not answers(first_url) and not answers(second_url)


def test_a_port_held_by_something_that_is_not_redis_is_left_alone(tmp_path):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        try:
            url, said = start_redis(tmp_path / "var", QUARRY_REDIS_PORT=str(port))
            assert url != f"redis://127.0.0.1:{port}/0" and answers(url)
            assert f"Port {port} answers with something that is not this checkout's Redis" in said
        finally:
            local_run(tmp_path / "var", "stop-redis")


@pytest.mark.parametrize("variable", ["PORT", "FLOWER_PORT"])
def test_a_taken_port_stops_the_run_before_anything_starts(tmp_path, variable):
    var_dir = tmp_path / "var"
    ports = {"PORT": str(free_port()), "FLOWER_PORT": str(free_port())}
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", int(ports[variable])))
        holder.listen()
        done = subprocess.run(
            [str(PROJECT_ROOT / "scripts" / "run-local.sh")],
            cwd=PROJECT_ROOT,
            env=checkout_env(var_dir, **ports),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
    assert done.returncode == 1
    assert f"port {ports[variable]} is taken" in done.stderr
    assert f"set {variable} to another port" in done.stderr
    assert not (var_dir / "redis").exists() and not (var_dir / "quarry.db").exists()


# What a person would otherwise see scroll by on every start.
_NOISE = (
    "Loading weights",
    "Loading faiss",
    "Context impl",
    "Will assume",
    "celery beat v",
    "[queues]",
    "Registered tasks",
    "Inspect method",
    "Traceback",
)


def test_make_run_serves_its_own_jobs_and_ends_cleanly_on_ctrl_c(tmp_path):
    # Another instance's Redis already holds the port this checkout would use.
    other = RedisServer(tmp_path / "other-instance-redis").start()
    var_dir, port, log_path = tmp_path / "var", free_port(), tmp_path / "make-run.log"
    env = checkout_env(
        var_dir, PORT=str(port), FLOWER_PORT=str(free_port()), QUARRY_REDIS_PORT=str(other.port), WORKER_CONCURRENCY="1"
    )
    with log_path.open("wb") as log:
        # -o: never reinstall here, even when pyproject.toml is newer than the venv.
        run = subprocess.Popen(
            ["make", "--no-print-directory", "-o", ".venv/.installed", "run"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        wait_until(
            lambda: b"Quarry is ready" in log_path.read_bytes() or run.poll() is not None, 180, what="the ready line"
        )
        output = log_path.read_text()
        ready = [line for line in output.splitlines() if "Quarry is ready" in line]
        key = (var_dir / "local-admin-key").read_text().strip()
        assert len(ready) == 1, output
        assert f"API http://127.0.0.1:{port}/api/v1" in ready[0] and f"admin key {key}" in ready[0]
        assert f"Listening at: http://127.0.0.1:{port}" in output  # HOST's default: this machine only

        client = Client(f"http://127.0.0.1:{port}", key)
        assert client.post("/api/v1/collections", json={"name": "notes"}).status_code == 201
        ingest = client.ingest("notes", [{"id": "knots", "text": "A bowline makes a fixed loop in a rope."}])
        assert ingest["status"] == "succeeded", ingest
        search = client.search("notes", query="how do I tie a loop?", top_k=1)
        assert search["status"] == "succeeded", search
        assert other.process.poll() is None and redis.Redis(port=other.port).dbsize() == 0
        own_port = int((var_dir / "redis" / "port").read_text())
        assert own_port != other.port

        os.killpg(run.pid, signal.SIGINT)  # what Ctrl-C in the terminal does
        run.wait(60)
        output = log_path.read_text()
        assert "make: ***" not in output, output
        for noise in _NOISE:
            assert noise not in output, f"{noise!r} in:\n{output}"
        assert not answers(f"redis://127.0.0.1:{own_port}/0")  # its own Redis is stopped...
        assert answers(other.url)  # ...and the other instance's is not
    finally:
        if run.poll() is None:  # honcho stops the processes it started on TERM
            os.killpg(run.pid, signal.SIGTERM)
            run.wait(60)
        local_run(var_dir, "stop-redis")
        other.stop()
