"""Settings a Heroku deployment depends on: the staging area follows the
database, and Heroku Redis's TLS URLs carry the certificate check that every
Redis client (redis-py, Flask-Limiter, Celery, Flower) reads."""

from __future__ import annotations

import pytest

from app.config import Settings


@pytest.fixture
def env(monkeypatch):
    for name in (
        "DATABASE_URL",
        "UPLOAD_STAGING",
        "REDIS_URL",
        "CELERY_BROKER_URL",
        "RATELIMIT_STORAGE_URL",
        "REDIS_SSL_CERT_REQS",
    ):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


@pytest.mark.parametrize(
    ("database_url", "staging"),
    [
        ("", "filesystem"),  # the SQLite default: one host
        ("sqlite:////srv/quarry.db", "filesystem"),
        ("postgres://u:p@db.example:5432/d", "database"),  # Heroku's spelling
        ("postgresql://u@db/d", "database"),
        ("postgresql+psycopg://u@db/d", "database"),
    ],
)
def test_uploads_are_staged_in_the_database_when_it_is_postgresql(env, database_url, staging):
    env.setenv("DATABASE_URL", database_url)
    assert Settings.from_env().upload_staging == staging


def test_the_staging_area_can_be_chosen_and_a_wrong_one_is_refused(env):
    env.setenv("DATABASE_URL", "postgres://u@db/d")
    env.setenv("UPLOAD_STAGING", "filesystem")
    assert Settings.from_env().upload_staging == "filesystem"
    env.setenv("UPLOAD_STAGING", "s3")
    with pytest.raises(RuntimeError, match="UPLOAD_STAGING"):
        Settings.from_env()


def test_a_tls_redis_url_carries_the_certificate_check_to_every_client(env):
    env.setenv("REDIS_URL", "rediss://:secret@redis.example:6380")
    env.setenv("REDIS_SSL_CERT_REQS", "none")
    settings = Settings.from_env()
    expected = "rediss://:secret@redis.example:6380?ssl_cert_reqs=none"
    assert settings.redis_url == settings.celery_broker_url == settings.ratelimit_storage_url == expected


def test_tls_certificates_are_checked_unless_told_otherwise(env):
    env.setenv("REDIS_URL", "rediss://redis.example:6380/0?health_check_interval=10")
    env.setenv("CELERY_BROKER_URL", "rediss://broker.example:6380/0?ssl_cert_reqs=optional")
    env.setenv("RATELIMIT_STORAGE_URL", "redis://limits.example:6379/2")
    settings = Settings.from_env()
    assert settings.redis_url == "rediss://redis.example:6380/0?health_check_interval=10&ssl_cert_reqs=required"
    assert settings.celery_broker_url == "rediss://broker.example:6380/0?ssl_cert_reqs=optional"  # its own
    assert settings.ratelimit_storage_url == "redis://limits.example:6379/2"  # no TLS, nothing to check
