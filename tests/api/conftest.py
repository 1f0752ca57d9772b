"""The in-process tier: the app in this process (`app.test_client()`), the
session's real database (SQLite, or PostgreSQL with TEST_DATABASE_URL), the
real Redis the suite starts, and jobs run by the inline worker through the
same runner the Celery task calls (tests/api/inprocess.py).

Its Redis database is 1, the one the `runtime` fixture binds: no real
worker consumes it, so every message sent here is run here or nowhere."""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from app import create_app
from app import runtime as process_runtime
from app.config import Settings
from app.extensions import current_settings
from tests.api.inprocess import TENANT, Client, InlineWorker, cpus_per_test_process
from tests.integration.corpora import unique


def app_settings(database_url: str, redis_url: str, **overrides) -> Settings:
    """The one place the tier's settings are made: the environment's, bound to
    the test database and Redis, with the shared stack's test values
    (tests/conftest.py `service`), then `overrides` (Settings field names)."""
    base = Settings.from_env()
    return dataclasses.replace(
        base,
        database_url=database_url,
        redis_url=redis_url,
        celery_broker_url=redis_url,
        ratelimit_storage_url=redis_url,
        max_upload_mb=1,
        key_rotation_grace_seconds=3,
        rate_limits={**base.rate_limits, "anonymous": "100000/minute"},
        upload_staging="database",
        webhook_allow_private_networks=True,
        webhook_retry_schedule=(0, 1, 1, 1, 1),
        webhook_progress_interval_seconds=1.0,
        webhook_sweep_interval_seconds=1,
        worker_cpus=cpus_per_test_process(),
        **overrides,
    )


@contextmanager
def settings_bound(settings: Settings) -> Iterator[Settings]:
    """`settings` bound for every service in this process while inside (as
    create_app() binds them), and what was bound before bound again after."""
    before = current_settings()
    process_runtime.configure(settings)
    try:
        yield settings
    finally:
        process_runtime.configure(before)


@pytest.fixture(scope="package")
def redis_url(redis_server, runtime) -> str:
    """Database 1 of the suite's Redis, the one `runtime` binds Celery to."""
    return redis_server.url.rsplit("/", 1)[0] + "/1"


@pytest.fixture(scope="package")
def settings(database_url, redis_url, tiny_cross_encoder) -> Iterator[Settings]:
    with settings_bound(app_settings(database_url, redis_url, rerank_model=str(tiny_cross_encoder))) as bound:
        yield bound


@pytest.fixture(scope="package")
def worker(settings) -> Iterator[InlineWorker]:
    inline = InlineWorker(sweep_interval=settings.webhook_sweep_interval_seconds)
    inline.discard_all()  # nothing another tier left behind runs here
    yield inline
    inline.discard_all()


@pytest.fixture(scope="package")
def app(settings):
    return create_app(settings)


@pytest.fixture(scope="package")
def api(app, worker) -> Client:
    """The tier's client, with an enterprise admin key of tenant "api"."""
    client = Client(app, worker)
    client.authenticate(client.create_key(TENANT, name="main"))
    return client


@pytest.fixture
def app_with(settings, worker) -> Iterator:
    """`app_with(**overrides)`: a client of another app, whose services see
    these settings for the rest of the test."""
    made: list = []

    def make(**overrides) -> Client:
        changed = dataclasses.replace(settings, **overrides)
        bound = settings_bound(changed)
        bound.__enter__()
        made.append(bound)
        client = Client(create_app(changed), worker)
        client.authenticate(client.create_key(TENANT, name="private"))
        return client

    yield make
    for bound in reversed(made):
        bound.__exit__(None, None, None)


@pytest.fixture(scope="module")
def collection(api):
    """An empty collection of the tier's tenant, one per module."""
    name = unique("empty")
    assert api.post("/api/v1/collections", json={"name": name}).status_code == 201
    return name
