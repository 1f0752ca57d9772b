from __future__ import annotations

import contextlib
import dataclasses
import os
import tempfile

import pytest

# In-process code (unit and database tests) keeps its files out of the
# project's var/; the service processes get their own directories.
os.environ["QUARRY_VAR_DIR"] = tempfile.mkdtemp(prefix="quarry-test-var-")
os.environ.pop("REDIS_URL", None)
os.environ.pop("DATABASE_URL", None)
os.environ.pop("CELERY_BROKER_URL", None)
# The suite runs many processes that use torch (its own, the workers it
# starts) on few cores: OpenMP threads that spin while waiting for work take
# the CPU the other processes need. They sleep instead (the suite ran 13 %
# faster on two cores with this).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from devstack.processes import RedisServer, Stack, create_database
from tests.loopback_only import keep_connections_on_this_machine


def pytest_configure(config):
    keep_connections_on_this_machine()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory):
    server = RedisServer(tmp_path_factory.mktemp("redis")).start()
    yield server
    server.stop()


@pytest.fixture(scope="session")
def database_url(tmp_path_factory):
    url, drop = create_database(tmp_path_factory.mktemp("db"))
    yield url
    drop()


# Receivers in the tests listen on 127.0.0.1; retries come within seconds.
WEBHOOK_TEST_SETTINGS = {
    "WEBHOOK_ALLOW_PRIVATE_NETWORKS": "1",
    "WEBHOOK_RETRY_SCHEDULE": "0,1,1,1,1",
    "WEBHOOK_PROGRESS_INTERVAL_SECONDS": "1",
    "WEBHOOK_SWEEP_INTERVAL_SECONDS": "1",
}


# The shared stack's worker's UPLOAD_DIR, under its work folder; the web's is var/uploads.
WORKER_UPLOAD_DIR = "worker-uploads"


@pytest.fixture(scope="session")
def tiny_cross_encoder(tmp_path_factory):
    """A cross-encoder for exercising the `rerank` pipeline: the bundled
    MiniLM weights under a freshly initialised, seeded scoring head. No
    cross-encoder ships with Quarry, and this one's scores mean nothing; it
    tests the reranking mechanism, never relevance."""
    import torch

    from app.search.embedding import resolve_model_path, stay_offline

    stay_offline()
    from sentence_transformers import CrossEncoder

    path = tmp_path_factory.mktemp("cross-encoder")
    torch.manual_seed(0)
    model = CrossEncoder(str(resolve_model_path("all-MiniLM-L6-v2")), num_labels=1, device="cpu", local_files_only=True)
    model.save(str(path))
    return path


@pytest.fixture(scope="session")
def service(tmp_path_factory, database_url, redis_server, tiny_cross_encoder):
    """The shared stack: web + one worker, MAX_UPLOAD_MB=1 for the limit tests,
    and the tiny cross-encoder as RERANK_MODEL.
    Web and worker share no upload folder, as on Heroku: every upload in the
    suite goes through the database staging area (WORKER_UPLOAD_DIR).
    Requests without a valid key share one budget per client IP, and every
    test's come from 127.0.0.1: the limits themselves are tested on private
    stacks (test_limits.py)."""
    stack = Stack(
        tmp_path_factory.mktemp("stack"),
        database_url,
        redis_server,
        MAX_UPLOAD_MB="1",
        KEY_ROTATION_GRACE_SECONDS="3",
        RERANK_MODEL=str(tiny_cross_encoder),
        RATE_LIMIT_ANONYMOUS="100000/minute",
        UPLOAD_STAGING="database",
        **WEBHOOK_TEST_SETTINGS,
    )
    try:
        stack.authenticate(stack.create_key("main", tier="enterprise"))
        # Web and beat start while the worker loads the model.
        stack.start_web(wait=False)
        stack.start_beat(wait=False)
        stack.start_worker(concurrency=2, UPLOAD_DIR=str(stack.workdir / WORKER_UPLOAD_DIR))
        stack.wait_started()
        yield stack
    finally:
        stack.stop()


@contextlib.contextmanager
def _private_stacks(tmp_path_factory):
    """make(database_url=None, **env): a private stack (own Redis and
    database), thrown away with them when the context ends."""
    made: list = []

    def make(database_url: str | None = None, **env: str) -> Stack:
        workdir = tmp_path_factory.mktemp("private")
        redis = RedisServer(workdir / "redis").start()
        url, drop = (database_url, lambda: None) if database_url else create_database(workdir)
        stack = Stack(workdir, url, redis, **env)
        made.append((stack, redis, drop))
        stack.authenticate(stack.create_key("private", tier="enterprise"))
        return stack

    try:
        yield make
    finally:
        for stack, redis, drop in made:
            stack.stop(graceful=False)  # thrown away with its Redis and database
            redis.stop()
            drop()


@pytest.fixture
def new_stack(tmp_path_factory):
    """A private stack (own Redis and database) for tests that break things.
    `database_url` names an already migrated database to use instead."""
    with _private_stacks(tmp_path_factory) as make:
        yield make


@pytest.fixture(scope="module")
def module_stack(tmp_path_factory):
    """new_stack for a module's tests that break things but leave the stack
    working for the next (a Redis restarted, a worker replaced): each starts
    no processes of its own, so the module pays for one stack."""
    with _private_stacks(tmp_path_factory) as make:
        yield make


@pytest.fixture
def private_postgres():
    """A PostgreSQL server of the test's own, migrated, that it may stop."""
    from app.cli import upgrade_database
    from devstack.postgres import PostgresServer, postgres_binaries

    if postgres_binaries() is None:
        pytest.skip("no PostgreSQL binaries on this machine")
    server = PostgresServer().init().start()
    try:
        upgrade_database(server.url)
        yield server
    finally:
        server.remove()


@pytest.fixture(scope="session")
def test_settings(database_url, redis_server):
    """The settings of services run in this process: the test database, and
    Redis database 1, so messages sent from here never reach a stack's worker."""
    from app.config import Settings
    from tests.api.inprocess import cpus_per_test_process

    url = redis_server.url.rsplit("/", 1)[0] + "/1"
    return dataclasses.replace(
        Settings.from_env(),
        database_url=database_url,
        redis_url=url,
        celery_broker_url=url,
        ratelimit_storage_url=url,
        worker_cpus=cpus_per_test_process(),
    )


@pytest.fixture(scope="session")
def runtime(test_settings):
    """Services in this process, bound to the test database and Redis as
    create_app() or a worker's setup binds them."""
    from app import runtime as process_runtime
    from app.extensions import db
    from app.search.embedding import set_torch_threads
    from app.services.handlers.embedding_threads import pool_share

    process_runtime.configure(test_settings)
    set_torch_threads(pool_share())  # as a worker's pool process starts
    yield db
    db.remove_session()


@pytest.fixture
def with_settings(runtime, test_settings):
    """with_settings(name=value, ...) binds the test's settings with those
    changed, for the rest of the test."""
    from app.extensions import bind_settings

    yield lambda **changes: bind_settings(dataclasses.replace(test_settings, **changes))
    bind_settings(test_settings)


@pytest.fixture
def make_app(runtime, test_settings):
    """make_app(**changes): an app on the test's settings with those changed.
    create_app binds its settings for the whole process; the test's are bound
    again afterwards, whatever test this process runs next."""
    from app import create_app
    from app import runtime as process_runtime

    yield lambda **changes: create_app(dataclasses.replace(test_settings, **changes))
    process_runtime.configure(test_settings)
