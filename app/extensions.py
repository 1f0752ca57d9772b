"""The runtime shared by the web app and the workers: the bound settings,
the database, Redis and the Celery app.

Importing this module only defines them, unbound. app/runtime.py binds them
for a process: create_app(settings) for the web, the Celery app's setup
(workers/__init__.py) for workers and beat. Nothing here reads Flask's
request; the web-only extensions (flask-smorest's Api, Flask-Limiter) live
in app/api/web_extensions.py.
"""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Generic, TypeVar, cast

import redis
from celery import Celery
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, scoped_session, sessionmaker
from werkzeug.local import LocalProxy

from app.config import Settings

log = logging.getLogger(__name__)

T = TypeVar("T")

_bound_settings: Settings | None = None


def bind_settings(bound: Settings) -> None:
    global _bound_settings
    _bound_settings = bound


def current_settings() -> Settings:
    """The settings bound for this process."""
    if _bound_settings is None:
        raise RuntimeError("no settings bound: create_app(settings) or the Celery app's setup binds them")
    return _bound_settings


# The process's settings, as create_app(settings) or the Celery app's setup
# bound them (app/runtime.py); services read them here, never from the
# environment.
settings = cast(Settings, LocalProxy(current_settings))

_AFTER_COMMIT = "quarry_after_commit"


class CommitAwareSession(Session):
    """A Session that runs the work queued with after_commit() once its
    transaction commits, and drops it when the transaction rolls back (as
    pretix's TransactionAwareTask and Django's on_commit do). A savepoint
    (begin_nested) commits or rolls back nothing of that queue."""

    def commit(self) -> None:
        super().commit()
        for work in self.info.pop(_AFTER_COMMIT, ()):
            work()

    def rollback(self) -> None:
        self.info.pop(_AFTER_COMMIT, None)
        super().rollback()

    def close(self) -> None:
        self.info.pop(_AFTER_COMMIT, None)
        super().close()


def after_commit(session: Session, work: Callable[[], None]) -> None:
    """Run `work` once `session`'s transaction commits (never if it rolls
    back): the broker message of a new job, a webhook delivery's task,
    counters. Whoever commits the session runs them, in the order queued."""
    # db.session is the request's scoped_session proxy: the work belongs to
    # the session it stands for.
    target = session() if isinstance(session, scoped_session) else session
    if not isinstance(target, CommitAwareSession):
        raise TypeError("after_commit needs a session made by db (a CommitAwareSession)")
    target.info.setdefault(_AFTER_COMMIT, []).append(work)


class Database:
    """One engine and a thread-scoped session factory per process."""

    def __init__(self) -> None:
        self.engine: Engine | None = None
        self.factory = sessionmaker(class_=CommitAwareSession, expire_on_commit=False)
        # Bound to the current thread: the web request's session.
        self._scoped = scoped_session(self.factory)
        # scoped_session proxies Session's methods to the current thread's
        # session; typed as that Session so services take one plain `Session`,
        # whether a request passes this proxy or a task its session_scope().
        self.session = cast(Session, self._scoped)

    def configure(self, url: str) -> None:
        if self.engine is not None and str(self.engine.url) == url:
            return
        if self.engine is not None:
            self.remove_session()
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

    def remove_session(self) -> None:
        """Close and forget the current thread's session (end of a request).
        A connection the database ended under it (a restart) cannot roll
        back, and need not: the server ended its transaction with it. The
        request's answer is already made, and goes out; the pool has
        discarded the connection."""
        try:
            self._scoped.remove()
        except DBAPIError as exc:
            log.warning("the database ended a request's connection before it closed: %s", exc.orig)
            self._scoped.registry.clear()

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


class PerProcess(Generic[T]):
    """A value made on first use in each process: a forked pool process never
    shares its parent's threads, sockets or SSL contexts."""

    def __init__(self, factory: Callable[[], T]) -> None:
        self._factory = factory
        self._value: T | None = None
        self._pid: int | None = None
        self._lock = threading.Lock()

    def get(self) -> T:
        with self._lock:
            if self._value is None or self._pid != os.getpid():
                self._value, self._pid = self._factory(), os.getpid()
            return self._value


class RedisClient:
    """Lazily connected client for the shared fast state: the search cache and
    its in-flight marks, poll-hint job durations, embedding-core claims, health."""

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


db = Database()
redis_store = RedisClient()
celery = Celery("quarry")
