"""Process-wide singletons shared by the web app and the workers.

The web app binds them in `create_app()`; worker processes bind them when the
Celery app is imported (`workers/__init__.py`). Neither binds at import time
of this module, so tests can point them at their own database and Redis.
"""

from __future__ import annotations

import logging
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Iterator

import redis
from apispec import BasePlugin
from celery import Celery
from flask import g, request
from flask_limiter import Limiter
from flask_smorest import Api
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, scoped_session, sessionmaker


class Database:
    """One engine and a thread-scoped session factory per process."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.factory = sessionmaker(expire_on_commit=False)
        # Bound to the current thread: the web request's session.
        self.session = scoped_session(self.factory)

    def configure(self, url: str) -> None:
        if self.engine is not None and str(self.engine.url) == url:
            return
        if self.engine is not None:
            self.session.remove()
            self.engine.dispose()
        kwargs: dict = {"pool_pre_ping": True}
        if url.startswith("sqlite"):
            # Web threads and worker processes share one file: wait for the
            # writer lock rather than failing with "database is locked".
            kwargs["connect_args"] = {"check_same_thread": False, "timeout": 30}
        self.engine = create_engine(url, **kwargs)
        if url.startswith("sqlite"):
            event.listen(self.engine, "connect", _sqlite_pragmas)
            event.listen(self.engine, "begin", _sqlite_begin)
        self.factory.configure(bind=self.engine)

    @contextmanager
    def reads_only(self) -> Iterator[None]:
        """Transactions begun inside only read (GET requests): on SQLite they
        need no write lock, so they never queue behind the workers' writes."""
        token = _sqlite_reads_only.set(True)
        try:
            yield
        finally:
            _sqlite_reads_only.reset(token)

    @contextmanager
    def session_scope(self) -> Iterator[Session]:
        """A short-lived session of its own (tasks, CLI, checkpoints), closed
        at the end; uncommitted work is rolled back."""
        session = self.factory()
        try:
            yield session
        finally:
            session.close()


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    # Let SQLAlchemy, not the sqlite3 module, decide when transactions begin.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


_sqlite_reads_only: ContextVar[bool] = ContextVar("sqlite_reads_only", default=False)


def _sqlite_begin(connection) -> None:
    # A deferred transaction that reads and then writes fails at once with
    # "database is locked" when another process wrote in between; taking the
    # write lock up front makes it wait (busy_timeout) instead. Read-only
    # work (Database.reads_only) keeps the cheap deferred BEGIN.
    connection.exec_driver_sql("BEGIN" if _sqlite_reads_only.get() else "BEGIN IMMEDIATE")


class RedisClient:
    """Lazily connected client for the shared fast state (locks, health)."""

    def __init__(self) -> None:
        self._client: redis.Redis | None = None
        self._url: str | None = None

    def configure(self, url: str) -> None:
        if url != self._url:
            self._url = url
            self._client = redis.Redis.from_url(
                url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=30
            )

    @property
    def client(self) -> redis.Redis:
        if self._client is None:
            raise RuntimeError("Redis is not configured")
        return self._client


class CommonResponsesPlugin(BasePlugin):
    """Documents the answers every /api/v1 route can give: 401 and 403 from
    authentication, 429 from rate limits; and marks /health as public."""

    def operation_helper(self, path=None, operations=None, **kwargs):
        for operation in (operations or {}).values():
            responses = operation.setdefault("responses", {})
            if path and path.startswith("/api/"):
                responses.setdefault("401", "UNAUTHORIZED")
                responses.setdefault("403", "FORBIDDEN")
                responses.setdefault("429", "TOO_MANY_REQUESTS")
            else:
                operation["security"] = []


class QuarryApi(Api):
    """flask-smorest's Api with RFC 9457 problem bodies for every error."""

    def __init__(self) -> None:
        from app.errors import ProblemSchema

        self.ERROR_SCHEMA = ProblemSchema
        super().__init__(spec_kwargs={"extra_plugins": [CommonResponsesPlugin()]})

    def handle_http_exception(self, error):
        from app.errors import handle_http_exception

        return handle_http_exception(error)

    def _register_responses(self):
        from app.errors import PROBLEM_CONTENT_TYPE

        super()._register_responses()
        # Error responses are documented as application/problem+json.
        components = self.spec.components
        for response in [*components.responses_lazy.values(), *components.responses.values()]:
            if "content" in response and "application/json" in response["content"]:
                response["content"] = {PROBLEM_CONTENT_TYPE: response["content"]["application/json"]}


def _rate_limit_key() -> str:
    """Per key when the request carries a valid one, else per client IP
    (behind TRUSTED_PROXY_COUNT proxies, ProxyFix has set remote_addr)."""
    principal = g.get("principal")
    return f"key:{principal.key_id}" if principal else f"ip:{request.remote_addr}"


def _rate_limit_value() -> str:
    from app.config import settings

    principal = g.get("principal")
    return settings.rate_limits[principal.tier if principal else "anonymous"]


def _not_api_request() -> bool:
    return not request.path.startswith("/api/")


class LimiterErrorCounter(logging.Handler):
    """Counts the storage errors Flask-Limiter swallows (it logs each one), so
    /health can show that requests are going through unlimited."""

    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1


limiter_errors = LimiterErrorCounter()
logging.getLogger("flask-limiter").addHandler(limiter_errors)

db = Database()
redis_store = RedisClient()
api = QuarryApi()
limiter = Limiter(
    key_func=_rate_limit_key,
    default_limits=[_rate_limit_value],
    default_limits_exempt_when=_not_api_request,
    headers_enabled=True,
    # If the limiter's Redis is down the API keeps answering, unlimited;
    # Flask-Limiter logs each failure (and app/errors.py counts them).
    swallow_errors=True,
    key_prefix="quarry",
    strategy="fixed-window",
)
celery = Celery("quarry")
celery.config_from_object("celeryconfig")


def init_runtime(database_url: str, redis_url: str) -> None:
    """Bind the shared singletons; called by create_app() and by the workers."""
    db.configure(database_url)
    redis_store.configure(redis_url)
