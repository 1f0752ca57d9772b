"""The one configuration object. Every setting comes from the environment
(an optional `.env` file fills in what the environment does not say), with a
safe default.

Importing this module reads nothing: `Settings.from_env()` reads, and
create_app(settings) or the Celery app's setup binds the result for the
process (app/runtime.py); code reads it as `app.extensions.settings`.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent

# Base path of the HTTP API; also in the links a job's JSON carries.
API_PREFIX = "/api/v1"

# The private Redis that `make run` starts listens here (not 6379, so it never
# collides with a system Redis), unless the port already answered with another
# checkout's Redis: then on a free port, recorded in var/redis/port.
LOCAL_REDIS_PORT = 6391


def local_redis_port(var_dir: Path) -> int:
    """The port of the Redis `make run` keeps under `var_dir`."""
    try:
        return int((var_dir / "redis" / "port").read_text())
    except (OSError, ValueError):
        return LOCAL_REDIS_PORT


class Environment:
    """Typed reads of environment variables; an empty value is the default."""

    def __init__(self, values: Mapping[str, str | None]) -> None:
        self._values = values

    def text(self, name: str, default: str) -> str:
        value = (self._values.get(name) or "").strip()
        return value or default

    def integer(self, name: str, default: int) -> int:
        try:
            return int(self.text(name, str(default)))
        except ValueError:
            raise RuntimeError(f"{name} must be an integer") from None

    def number(self, name: str, default: float) -> float:
        try:
            return float(self.text(name, str(default)))
        except ValueError:
            raise RuntimeError(f"{name} must be a number") from None

    def flag(self, name: str, default: bool) -> bool:
        return self.text(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}

    def delays(self, name: str, default: str) -> tuple[int, ...]:
        try:
            delays = tuple(int(part) for part in self.text(name, default).split(","))
        except ValueError:
            raise RuntimeError(f"{name} must be comma-separated whole seconds") from None
        if not delays or min(delays) < 0:
            raise RuntimeError(f"{name} must list one or more delays of 0 seconds or more")
        return delays

    def path(self, name: str, default: Path) -> Path:
        return Path(self.text(name, str(default))).expanduser().resolve()

    def choice(self, name: str, choices: tuple[str, ...], default: str) -> str:
        value = self.text(name, default).lower()
        if value not in choices:
            raise RuntimeError(f"{name} must be one of: {', '.join(choices)}")
        return value


def _is_postgres(url: str) -> bool:
    return url.startswith(("postgres://", "postgresql://", "postgresql+"))


def _with_redis_tls(url: str, cert_reqs: str) -> str:
    """A rediss:// URL carrying the certificate check, in the query form that
    redis-py, Flask-Limiter's storage and Celery's broker all read."""
    if not url.startswith("rediss://") or "ssl_cert_reqs=" in url:
        return url
    return f"{url}{'&' if '?' in url else '?'}ssl_cert_reqs={cert_reqs}"


@dataclass(frozen=True)
class Settings:
    var_dir: Path
    database_url: str
    redis_url: str
    redis_ssl_cert_reqs: str
    celery_broker_url: str
    index_dir: Path
    upload_dir: Path
    upload_staging: str
    metrics_dir: Path
    embedding_model: str
    max_upload_mb: int
    max_extracted_mb: int
    rerank_model: str
    rerank_candidates: int
    hnsw_m: int
    hnsw_ef_construction: int
    hnsw_ef_search: int
    index_cache_mb: int
    hnsw_rebuild_fraction: float
    search_cache_ttl_seconds: int
    search_batch_max: int
    search_batch_wait_ms: float
    metrics_token: str
    cors_origins: tuple[str, ...]
    compress_min_bytes: int
    chunk_tokens: int
    chunk_overlap_tokens: int
    embed_batch_size: int
    job_lease_seconds: int
    job_time_limit_seconds: int
    stuck_queued_seconds: int
    recovery_interval_seconds: int
    job_retention_days: int
    broker_visibility_timeout: int
    worker_concurrency: int
    worker_cpus: int
    worker_start_timeout_seconds: int
    worker_preload_model: bool
    log_level: str
    log_format: str
    ratelimit_storage_url: str
    rate_limits: dict[str, str]
    inflight_jobs: dict[str, int]
    fair_share_jobs: int
    queue_depth_limit: int
    key_rotation_grace_seconds: int
    trusted_proxy_count: int
    webhook_retry_schedule: tuple[int, ...]
    webhook_timeout_seconds: int
    webhook_secret_grace_seconds: int
    webhook_progress_interval_seconds: float
    webhook_disable_after_hours: float
    webhook_allow_private_networks: bool
    webhook_sweep_interval_seconds: int
    webhook_delivery_threads: int
    web_host: str
    web_port: int
    web_concurrency: int
    web_threads: int
    web_timeout: int

    @classmethod
    def from_env(cls, environ: Mapping[str, str | None] | None = None) -> Settings:
        """The settings `environ` says (default: the process environment over
        the project's `.env`), section by section."""
        if environ is None:
            environ = {**dotenv_values(PROJECT_ROOT / ".env"), **os.environ}
        env = Environment(environ)
        storage = _storage(env)
        return cls(
            **storage,
            **_search(env),
            **_jobs(env),
            **_limits(env, storage["redis_url"], storage["redis_ssl_cert_reqs"]),
            **_webhooks(env),
            **_web(env),
        )

    @property
    def max_extracted_chars(self) -> int:
        return self.max_extracted_mb * 1024 * 1024

    @property
    def max_upload_bytes(self) -> int:
        return self.max_upload_mb * 1024 * 1024

    def normalized_database_url(self) -> str:
        """Heroku-style `postgres://` URLs name the psycopg 3 driver explicitly."""
        url = self.database_url
        for prefix in ("postgres://", "postgresql://"):
            if url.startswith(prefix):
                return "postgresql+psycopg://" + url[len(prefix) :]
        return url


def _storage(env: Environment) -> dict[str, Any]:
    var_dir = env.path("QUARRY_VAR_DIR", PROJECT_ROOT / "var")
    database_url = env.text("DATABASE_URL", f"sqlite:///{var_dir / 'quarry.db'}")
    # Heroku Redis serves TLS (rediss://) with a self-signed certificate: "none" there.
    redis_tls = env.choice("REDIS_SSL_CERT_REQS", ("required", "optional", "none"), "required")
    redis_url = _with_redis_tls(env.text("REDIS_URL", f"redis://127.0.0.1:{local_redis_port(var_dir)}/0"), redis_tls)
    return dict(
        var_dir=var_dir,
        database_url=database_url,
        redis_url=redis_url,
        redis_ssl_cert_reqs=redis_tls,
        celery_broker_url=_with_redis_tls(env.text("CELERY_BROKER_URL", redis_url), redis_tls),
        index_dir=env.path("INDEX_DIR", var_dir / "indexes"),
        upload_dir=env.path("UPLOAD_DIR", var_dir / "uploads"),
        # Where uploads wait for their ingest job: "database" needs no disk
        # shared by web and worker (Heroku dynos); "filesystem" is UPLOAD_DIR,
        # for one host or a shared volume.
        upload_staging=env.choice(
            "UPLOAD_STAGING",
            ("database", "filesystem"),
            "database" if _is_postgres(database_url) else "filesystem",
        ),
        # Every process writes its Prometheus samples here (app/metrics.py).
        metrics_dir=env.path("PROMETHEUS_MULTIPROC_DIR", var_dir / "metrics"),
    )


def _search(env: Environment) -> dict[str, Any]:
    return dict(
        embedding_model=env.text("EMBEDDING_MODEL", "all-MiniLM-L6-v2"),
        max_upload_mb=env.integer("MAX_UPLOAD_MB", 100),
        # Text one uploaded file may expand to (a zip bomb in a docx stops here).
        max_extracted_mb=env.integer("MAX_EXTRACTED_MB", 50),
        # A local sentence-transformers CrossEncoder folder; empty: the
        # `rerank` pipeline is unavailable.
        rerank_model=env.text("RERANK_MODEL", ""),
        rerank_candidates=env.integer("RERANK_CANDIDATES", 50),
        hnsw_m=env.integer("HNSW_M", 32),
        hnsw_ef_construction=env.integer("HNSW_EF_CONSTRUCTION", 80),
        hnsw_ef_search=env.integer("HNSW_EF_SEARCH", 128),
        # Collection indexes (vectors, BM25, document map) each worker process
        # keeps in memory; past it the least recently searched are reloaded
        # from their files when next searched. 0: no bound.
        index_cache_mb=env.integer("INDEX_CACHE_MB", 1024),
        # Rebuild an hnsw index once this fraction of its vectors are deleted.
        hnsw_rebuild_fraction=env.number("HNSW_REBUILD_FRACTION", 0.2),
        # How long an identical search is answered from Redis; 0 turns the cache off.
        search_cache_ttl_seconds=env.integer("SEARCH_CACHE_TTL_SECONDS", 600),
        # Single searches waiting together run as one micro-batch of at most
        # this many (1: each alone); once a batch has more than one, it
        # waits this long for more to join.
        search_batch_max=env.integer("SEARCH_BATCH_MAX", 32),
        search_batch_wait_ms=env.number("SEARCH_BATCH_WAIT_MS", 2.0),
        chunk_tokens=env.integer("CHUNK_TOKENS", 200),
        chunk_overlap_tokens=env.integer("CHUNK_OVERLAP_TOKENS", 40),
        embed_batch_size=env.integer("EMBED_BATCH_SIZE", 64),
    )


def _usable_cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def _jobs(env: Environment) -> dict[str, Any]:
    cpus = _usable_cpus()
    return dict(
        job_lease_seconds=env.integer("JOB_LEASE_SECONDS", 60),
        job_time_limit_seconds=env.integer("JOB_TIME_LIMIT_SECONDS", 3600),
        stuck_queued_seconds=env.integer("STUCK_QUEUED_SECONDS", 300),
        recovery_interval_seconds=env.integer("RECOVERY_INTERVAL_SECONDS", 30),
        job_retention_days=env.integer("JOB_RETENTION_DAYS", 30),
        broker_visibility_timeout=env.integer("BROKER_VISIBILITY_TIMEOUT", 7200),
        worker_concurrency=env.integer("WORKER_CONCURRENCY", cpus),
        # The cores a worker's pool shares out as torch threads: the ones this
        # process may run on, unless a CPU quota (a container's, or another
        # service's share of the host) says fewer.
        worker_cpus=env.integer("WORKER_CPUS", cpus),
        worker_start_timeout_seconds=env.integer("WORKER_START_TIMEOUT_SECONDS", 120),
        # Load the model in the worker's main process before the pool forks,
        # so the pool processes share one copy (0: each loads its own).
        worker_preload_model=env.flag("WORKER_PRELOAD_MODEL", True),
    )


def _limits(env: Environment, redis_url: str, redis_tls: str) -> dict[str, Any]:
    return dict(
        ratelimit_storage_url=_with_redis_tls(env.text("RATELIMIT_STORAGE_URL", redis_url), redis_tls),
        # Requests per key by tier, and per client IP for requests
        # without a valid key ("anonymous"); limits-library notation.
        rate_limits={
            "free": env.text("RATE_LIMIT_FREE", "60/minute"),
            "pro": env.text("RATE_LIMIT_PRO", "600/minute"),
            "enterprise": env.text("RATE_LIMIT_ENTERPRISE", "6000/minute"),
            "anonymous": env.text("RATE_LIMIT_ANONYMOUS", "20/minute"),
        },
        # Queued + running jobs one key may have at once, by tier.
        inflight_jobs={
            "free": env.integer("INFLIGHT_JOBS_FREE", 10),
            "pro": env.integer("INFLIGHT_JOBS_PRO", 100),
            "enterprise": env.integer("INFLIGHT_JOBS_ENTERPRISE", 1000),
        },
        fair_share_jobs=env.integer("FAIR_SHARE_JOBS", 4),
        queue_depth_limit=env.integer("QUEUE_DEPTH_LIMIT", 10000),
        key_rotation_grace_seconds=env.integer("KEY_ROTATION_GRACE_SECONDS", 86400),
        trusted_proxy_count=env.integer("TRUSTED_PROXY_COUNT", 0),
    )


def _webhooks(env: Environment) -> dict[str, Any]:
    return dict(
        # Delays in seconds before each attempt; its length is the number of attempts.
        webhook_retry_schedule=env.delays("WEBHOOK_RETRY_SCHEDULE", "0,5,300,1800,7200,18000,36000,36000"),
        # One attempt's whole answer must arrive within this; the attempt's
        # lease is a few seconds longer.
        webhook_timeout_seconds=env.integer("WEBHOOK_TIMEOUT_SECONDS", 15),
        webhook_secret_grace_seconds=env.integer("WEBHOOK_SECRET_GRACE_SECONDS", 86400),
        webhook_progress_interval_seconds=env.number("WEBHOOK_PROGRESS_INTERVAL_SECONDS", 2.0),
        webhook_disable_after_hours=env.number("WEBHOOK_DISABLE_AFTER_HOURS", 72.0),
        webhook_allow_private_networks=env.flag("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False),
        webhook_sweep_interval_seconds=env.integer("WEBHOOK_SWEEP_INTERVAL_SECONDS", 10),
        # Concurrent attempts per worker pool process (they wait on the network).
        webhook_delivery_threads=env.integer("WEBHOOK_DELIVERY_THREADS", 16),
    )


def _web(env: Environment) -> dict[str, Any]:
    return dict(
        # When set, /metrics needs `Authorization: Bearer <token>`.
        metrics_token=env.text("METRICS_TOKEN", ""),
        # Browser origins allowed to call the API (comma-separated, `*` for
        # any); empty: no CORS headers, browsers keep to same-origin.
        cors_origins=tuple(o.strip() for o in env.text("CORS_ORIGINS", "").split(",") if o.strip()),
        # JSON answers at least this large are gzipped for clients that accept it.
        compress_min_bytes=env.integer("COMPRESS_MIN_BYTES", 1024),
        log_level=env.text("LOG_LEVEL", "INFO").upper(),
        # json: one object per line, for machines; text: for people (make run).
        log_format=env.text("LOG_FORMAT", "json").lower(),
        web_host=env.text("HOST", "0.0.0.0"),
        web_port=env.integer("PORT", 8000),
        web_concurrency=env.integer("WEB_CONCURRENCY", 2),
        web_threads=env.integer("WEB_THREADS", 4),
        web_timeout=env.integer("WEB_TIMEOUT", 30),
    )
