"""The one configuration object. Every setting comes from the environment
(an optional `.env` file is read for local runs), with a safe default."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from dotenv import load_dotenv

PROJECT_ROOT = Path(__file__).resolve().parent.parent
load_dotenv(PROJECT_ROOT / ".env", override=False)

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


def _env(name: str, default: str) -> str:
    value = os.environ.get(name, "").strip()
    return value or default


def _int(name: str, default: int) -> int:
    try:
        return int(_env(name, str(default)))
    except ValueError:
        raise RuntimeError(f"{name} must be an integer") from None


def _bool(name: str, default: bool) -> bool:
    return _env(name, "1" if default else "0").lower() in {"1", "true", "yes", "on"}


def _float(name: str, default: float) -> float:
    try:
        return float(_env(name, str(default)))
    except ValueError:
        raise RuntimeError(f"{name} must be a number") from None


def _delays(name: str, default: str) -> tuple[int, ...]:
    try:
        delays = tuple(int(part) for part in _env(name, default).split(","))
    except ValueError:
        raise RuntimeError(f"{name} must be comma-separated whole seconds") from None
    if not delays or min(delays) < 0:
        raise RuntimeError(f"{name} must list one or more delays of 0 seconds or more")
    return delays


def _path(name: str, default: Path) -> Path:
    return Path(_env(name, str(default))).expanduser().resolve()


def _choice(name: str, choices: tuple[str, ...], default: str) -> str:
    value = _env(name, default).lower()
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
    embedding_model: str
    max_upload_mb: int
    max_extracted_mb: int
    rerank_model: str
    rerank_candidates: int
    hnsw_m: int
    hnsw_ef_construction: int
    hnsw_ef_search: int
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
    worker_start_timeout_seconds: int
    worker_preload_model: bool
    log_level: str
    log_format: str
    ratelimit_storage_url: str
    rate_limits: dict[str, str]
    inflight_jobs: dict[str, int]
    queue_depth_limit: int
    key_rotation_grace_seconds: int
    trusted_proxy_count: int
    webhook_retry_schedule: tuple[int, ...]
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
    def from_env(cls) -> Settings:
        var_dir = _path("QUARRY_VAR_DIR", PROJECT_ROOT / "var")
        database_url = _env("DATABASE_URL", f"sqlite:///{var_dir / 'quarry.db'}")
        # Heroku Redis serves TLS (rediss://) with a self-signed certificate: "none" there.
        redis_tls = _choice("REDIS_SSL_CERT_REQS", ("required", "optional", "none"), "required")
        redis_url = _with_redis_tls(_env("REDIS_URL", f"redis://127.0.0.1:{local_redis_port(var_dir)}/0"), redis_tls)
        return cls(
            var_dir=var_dir,
            database_url=database_url,
            redis_url=redis_url,
            redis_ssl_cert_reqs=redis_tls,
            celery_broker_url=_with_redis_tls(_env("CELERY_BROKER_URL", redis_url), redis_tls),
            index_dir=_path("INDEX_DIR", var_dir / "indexes"),
            upload_dir=_path("UPLOAD_DIR", var_dir / "uploads"),
            # Where uploads wait for their ingest job: "database" needs no disk
            # shared by web and worker (Heroku dynos); "filesystem" is UPLOAD_DIR,
            # for one host or a shared volume.
            upload_staging=_choice(
                "UPLOAD_STAGING",
                ("database", "filesystem"),
                "database" if _is_postgres(database_url) else "filesystem",
            ),
            embedding_model=_env("EMBEDDING_MODEL", "all-MiniLM-L6-v2"),
            max_upload_mb=_int("MAX_UPLOAD_MB", 100),
            # Text one uploaded file may expand to (a zip bomb in a docx stops here).
            max_extracted_mb=_int("MAX_EXTRACTED_MB", 50),
            # A local sentence-transformers CrossEncoder folder; empty: the
            # `rerank` pipeline is unavailable.
            rerank_model=_env("RERANK_MODEL", ""),
            rerank_candidates=_int("RERANK_CANDIDATES", 50),
            hnsw_m=_int("HNSW_M", 32),
            hnsw_ef_construction=_int("HNSW_EF_CONSTRUCTION", 80),
            hnsw_ef_search=_int("HNSW_EF_SEARCH", 128),
            # Rebuild an hnsw index once this fraction of its vectors are deleted.
            hnsw_rebuild_fraction=_float("HNSW_REBUILD_FRACTION", 0.2),
            # How long an identical search is answered from Redis; 0 turns the cache off.
            search_cache_ttl_seconds=_int("SEARCH_CACHE_TTL_SECONDS", 600),
            # Single searches waiting together run as one micro-batch of at most
            # this many (1: each alone); once a batch has more than one, it
            # waits this long for more to join.
            search_batch_max=_int("SEARCH_BATCH_MAX", 32),
            search_batch_wait_ms=_float("SEARCH_BATCH_WAIT_MS", 2.0),
            # When set, /metrics needs `Authorization: Bearer <token>`.
            metrics_token=_env("METRICS_TOKEN", ""),
            # Browser origins allowed to call the API (comma-separated, `*` for
            # any); empty: no CORS headers, browsers keep to same-origin.
            cors_origins=tuple(o.strip() for o in _env("CORS_ORIGINS", "").split(",") if o.strip()),
            # JSON answers at least this large are gzipped for clients that accept it.
            compress_min_bytes=_int("COMPRESS_MIN_BYTES", 1024),
            chunk_tokens=_int("CHUNK_TOKENS", 200),
            chunk_overlap_tokens=_int("CHUNK_OVERLAP_TOKENS", 40),
            embed_batch_size=_int("EMBED_BATCH_SIZE", 64),
            job_lease_seconds=_int("JOB_LEASE_SECONDS", 60),
            job_time_limit_seconds=_int("JOB_TIME_LIMIT_SECONDS", 3600),
            stuck_queued_seconds=_int("STUCK_QUEUED_SECONDS", 300),
            recovery_interval_seconds=_int("RECOVERY_INTERVAL_SECONDS", 30),
            job_retention_days=_int("JOB_RETENTION_DAYS", 30),
            broker_visibility_timeout=_int("BROKER_VISIBILITY_TIMEOUT", 7200),
            worker_concurrency=_int("WORKER_CONCURRENCY", os.cpu_count() or 1),
            worker_start_timeout_seconds=_int("WORKER_START_TIMEOUT_SECONDS", 120),
            # Load the model in the worker's main process before the pool forks,
            # so the pool processes share one copy (0: each loads its own).
            worker_preload_model=_bool("WORKER_PRELOAD_MODEL", True),
            log_level=_env("LOG_LEVEL", "INFO").upper(),
            # json: one object per line, for machines; text: for people (make run).
            log_format=_env("LOG_FORMAT", "json").lower(),
            ratelimit_storage_url=_with_redis_tls(_env("RATELIMIT_STORAGE_URL", redis_url), redis_tls),
            # Requests per key by tier, and per client IP for requests
            # without a valid key ("anonymous"); limits-library notation.
            rate_limits={
                "free": _env("RATE_LIMIT_FREE", "60/minute"),
                "pro": _env("RATE_LIMIT_PRO", "600/minute"),
                "enterprise": _env("RATE_LIMIT_ENTERPRISE", "6000/minute"),
                "anonymous": _env("RATE_LIMIT_ANONYMOUS", "20/minute"),
            },
            # Queued + running jobs one key may have at once, by tier.
            inflight_jobs={
                "free": _int("INFLIGHT_JOBS_FREE", 10),
                "pro": _int("INFLIGHT_JOBS_PRO", 100),
                "enterprise": _int("INFLIGHT_JOBS_ENTERPRISE", 1000),
            },
            queue_depth_limit=_int("QUEUE_DEPTH_LIMIT", 10000),
            key_rotation_grace_seconds=_int("KEY_ROTATION_GRACE_SECONDS", 86400),
            trusted_proxy_count=_int("TRUSTED_PROXY_COUNT", 0),
            # Delays in seconds before each attempt; its length is the number of attempts.
            webhook_retry_schedule=_delays("WEBHOOK_RETRY_SCHEDULE", "0,5,300,1800,7200,18000,36000,36000"),
            webhook_secret_grace_seconds=_int("WEBHOOK_SECRET_GRACE_SECONDS", 86400),
            webhook_progress_interval_seconds=_float("WEBHOOK_PROGRESS_INTERVAL_SECONDS", 2.0),
            webhook_disable_after_hours=_float("WEBHOOK_DISABLE_AFTER_HOURS", 72.0),
            webhook_allow_private_networks=_bool("WEBHOOK_ALLOW_PRIVATE_NETWORKS", False),
            webhook_sweep_interval_seconds=_int("WEBHOOK_SWEEP_INTERVAL_SECONDS", 10),
            # Concurrent attempts per worker pool process (they wait on the network).
            webhook_delivery_threads=_int("WEBHOOK_DELIVERY_THREADS", 16),
            web_host=_env("HOST", "0.0.0.0"),
            web_port=_int("PORT", 8000),
            web_concurrency=_int("WEB_CONCURRENCY", 2),
            web_threads=_int("WEB_THREADS", 4),
            web_timeout=_int("WEB_TIMEOUT", 30),
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


settings = Settings.from_env()

# Every process writes its Prometheus samples here (app/metrics.py); it must
# be set before prometheus_client is imported anywhere, hence here.
os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", str(settings.var_dir / "metrics"))
Path(os.environ["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
