"""SQLAlchemy models: the source of truth. Every schema change is an Alembic
revision under migrations/; `create_all` is never used outside tests."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CursorResult,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, relationship
from sqlalchemy.sql.dml import UpdateBase
from sqlalchemy.types import TypeDecorator

DEFAULT_TENANT = "default"


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> str:
    return uuid.uuid4().hex


_ROW_ID = re.compile(r"[0-9a-f]{32}")


def is_row_id(value: str) -> bool:
    """Whether `value` has the shape of an id new_id() makes; anything else
    (NUL bytes, 10,000 characters) cannot name a row and is not looked up."""
    return bool(_ROW_ID.fullmatch(value))


def execute_counted(session: Session, statement: UpdateBase) -> int:
    """Run an UPDATE or DELETE in `session`; the number of rows it matched."""
    # Session.execute() is typed to return a Result; a DML statement's result
    # is a CursorResult, which is what has rowcount.
    return cast(CursorResult, session.execute(statement)).rowcount


# A document's id (the client's, or its file's name) and where it came from:
# the API, the ingest worker and the columns below keep to the same lengths.
DOCUMENT_ID_MAX_LENGTH = 256
DOCUMENT_SOURCE_MAX_LENGTH = 512


class UTCDateTime(TypeDecorator):
    """Timezone-aware UTC datetimes on every backend (SQLite drops the zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value

    def process_result_value(self, value, dialect):
        if value is not None and value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        return value


class Base(DeclarativeBase):
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class Tenant(Base):
    """Owner of collections, documents, jobs and keys."""

    __tablename__ = "tenants"

    id: Mapped[str] = mapped_column(String(64), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Signs the deliveries to per-job callback_urls (GET /webhooks/secret).
    webhook_secret: Mapped[str | None] = mapped_column(String(128))


class ApiKey(Base):
    """An API key. Only a SHA-256 hash of the secret is stored; the visible
    prefix lets a leaked key be recognised and looked up."""

    __tablename__ = "api_keys"

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(ForeignKey("tenants.id", ondelete="CASCADE"), index=True)
    name: Mapped[str] = mapped_column(String(128))
    prefix: Mapped[str] = mapped_column(String(32), unique=True)
    key_hash: Mapped[str] = mapped_column(String(64))
    scopes: Mapped[list[str]] = mapped_column(JSON, default=list)
    tier: Mapped[str] = mapped_column(String(16), default="free")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The key this one replaced by rotation.
    rotated_from_id: Mapped[str | None] = mapped_column(String(32))


class Collection(Base):
    __tablename__ = "collections"
    __table_args__ = (UniqueConstraint("tenant_id", "name", name="uq_collections_tenant_name"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True, default=DEFAULT_TENANT)
    name: Mapped[str] = mapped_column(String(64))
    description: Mapped[str | None] = mapped_column(Text)
    index_type: Mapped[str] = mapped_column(String(16), default="flat")
    # Moves on every write to the collection's FAISS index; readers reload
    # their in-memory copy when it moves.
    generation: Mapped[int] = mapped_column(Integer, default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)

    if TYPE_CHECKING:
        # Not columns: counts that services.collections.attach_stats() sets
        # for the API. (Declared for type checkers only; the ORM would
        # refuse a plain annotation.)
        documents: int
        chunks: int


class Document(Base):
    __tablename__ = "documents"
    __table_args__ = (
        UniqueConstraint("collection_id", "external_id", name="uq_documents_collection_external"),
        # Ingest finds a text already stored by its hash; two ids may hold the same text (migration 0008).
        Index("ix_documents_collection_hash", "collection_id", "content_hash"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), index=True, default=DEFAULT_TENANT)
    collection_id: Mapped[str] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    external_id: Mapped[str] = mapped_column(String(DOCUMENT_ID_MAX_LENGTH))
    content_hash: Mapped[str] = mapped_column(String(64))
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSON, default=dict)
    source: Mapped[str | None] = mapped_column(String(DOCUMENT_SOURCE_MAX_LENGTH))
    status: Mapped[str] = mapped_column(String(16), default="ready")
    chunk_count: Mapped[int] = mapped_column(Integer, default=0)
    # The job that wrote this row: a re-run of the same job after a crash
    # counts it as its own work, not as a duplicate.
    ingest_job_id: Mapped[str | None] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    chunks: Mapped[list[Chunk]] = relationship(
        back_populates="document", cascade="all, delete-orphan", passive_deletes=True
    )


class Chunk(Base):
    __tablename__ = "chunks"
    # Ids are never reused (migration 0005): a chunk id is its vector's id.
    __table_args__ = {"sqlite_autoincrement": True}

    # The integer id doubles as the FAISS vector id.
    id: Mapped[int] = mapped_column(BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT)
    collection_id: Mapped[str] = mapped_column(ForeignKey("collections.id", ondelete="CASCADE"), index=True)
    document_id: Mapped[str] = mapped_column(ForeignKey("documents.id", ondelete="CASCADE"), index=True)
    ordinal: Mapped[int] = mapped_column(Integer)
    text: Mapped[str] = mapped_column(Text)
    start_char: Mapped[int] = mapped_column(Integer, default=0)
    end_char: Mapped[int] = mapped_column(Integer, default=0)
    # float32 little-endian, normalized; the index is rebuildable from these.
    embedding: Mapped[bytes] = mapped_column(LargeBinary)

    document: Mapped[Document] = relationship(back_populates="chunks")


class Job(Base):
    __tablename__ = "jobs"
    __table_args__ = (
        Index("ix_jobs_tenant_created", "tenant_id", "created_at", "id"),
        Index("ix_jobs_status_updated", "status", "updated_at"),
        Index("ix_jobs_api_key_status", "api_key_id", "status"),
        # A batch claims waiting jobs in the order the broker hands them out.
        Index("ix_jobs_status_priority_updated", "status", "priority", "updated_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64), default=DEFAULT_TENANT)
    type: Mapped[str] = mapped_column(String(32))
    # Vocabulary and changes: app/services/jobs (kinds.py, transitions.py).
    status: Mapped[str] = mapped_column(String(16))
    # The key that submitted the job (for the in-flight quota); never the secret.
    api_key_id: Mapped[str | None] = mapped_column(String(32))
    collection_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # Kept by name too, so a job still reads well after its collection is gone.
    collection_name: Mapped[str | None] = mapped_column(String(64))
    params: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    progress_processed: Mapped[int] = mapped_column(Integer, default=0)
    progress_total: Mapped[int] = mapped_column(Integer, default=0)
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON)
    error_code: Mapped[str | None] = mapped_column(String(64))
    error_message: Mapped[str | None] = mapped_column(Text)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    # Its message's priority on the broker (0 first; services/jobs/broker.py),
    # which a batch claiming waiting jobs follows too.
    priority: Mapped[int] = mapped_column(SmallInteger, default=5, server_default="5")
    # Who runs the job and until when: a worker renews its lease at every
    # checkpoint; an expired lease means the worker died and the job may be
    # taken over (services/jobs/runner.py).
    lease_owner: Mapped[str | None] = mapped_column(String(64))
    lease_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by a cancel of a running job; its worker stops at the next checkpoint.
    cancel_requested_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # When the last job.progress event was written (they are throttled).
    progress_event_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The identical job this one waits on instead of running itself: while
    # it is set, the leader's final transition() finishes this job too
    # (services/jobs/transitions.py); kept afterwards as where the answer came from.
    follows_job_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # A finished job never changes again: its JSON, rendered once by its final
    # transition(), is what every later poll answers (services/jobs/serialize.py).
    final_json: Mapped[str | None] = mapped_column(Text)

    # Not stored: set on a job answered again for a repeated Idempotency-Key.
    replayed = False


class StagedUpload(Base):
    """An uploaded file waiting for its ingest job (UPLOAD_STAGING=database),
    so web and worker need share no disk. Written in the transaction that
    writes the job; deleted once the job has finished."""

    __tablename__ = "staged_uploads"

    # No foreign key: the rows are written before the job row, in the same
    # transaction; beat's sweep removes any a job no longer needs.
    job_id: Mapped[str] = mapped_column(String(32), primary_key=True)
    # The path the job's params name ("documents.json", "files/0.pdf").
    name: Mapped[str] = mapped_column(String(255), primary_key=True)
    content: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookEndpoint(Base):
    """A tenant's subscriber URL. The secret is kept to sign with (HMAC needs
    it); it is shown once, at creation or rotation."""

    __tablename__ = "webhook_endpoints"
    __table_args__ = (Index("ix_webhook_endpoints_tenant_created", "tenant_id", "created_at", "id"),)

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64))
    url: Mapped[str] = mapped_column(String(2048))
    description: Mapped[str | None] = mapped_column(Text)
    events: Mapped[list[str]] = mapped_column(JSON, default=list)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    disabled_reason: Mapped[str | None] = mapped_column(Text)
    secret: Mapped[str] = mapped_column(String(128))
    # After a rotation the old secret signs beside the new one until then.
    previous_secret: Mapped[str | None] = mapped_column(String(128))
    previous_secret_expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # The first failed attempt since the last success; disabled after long enough.
    failing_since: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class WebhookDelivery(Base):
    """The outbox: one event for one receiver, written in the transaction that
    caused it, then attempted until it succeeds or its schedule runs out."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at", "id"),
        Index("ix_webhook_deliveries_state_next", "state", "next_attempt_at"),
        Index("ix_webhook_deliveries_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    tenant_id: Mapped[str] = mapped_column(String(64))
    # None for a job's own callback_url.
    endpoint_id: Mapped[str | None] = mapped_column(ForeignKey("webhook_endpoints.id", ondelete="CASCADE"))
    url: Mapped[str] = mapped_column(String(2048))
    job_id: Mapped[str | None] = mapped_column(String(32), index=True)
    # The webhook-id header: the same on every attempt, for de-duplication.
    event_id: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    payload: Mapped[dict[str, Any]] = mapped_column(JSON)
    state: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    first_attempt_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(Text)
    # Every attempt: when, status code, latency, first 1 KB of the answer or the error.
    attempt_log: Mapped[list[dict[str, Any]]] = mapped_column(JSON, default=list)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)


class IdempotencyKey(Base):
    """A submit made with an `Idempotency-Key` header: the same key (per API
    key) with the same request within 24 h answers with this job again."""

    __tablename__ = "idempotency_keys"
    __table_args__ = (
        UniqueConstraint("api_key_id", "key", name="uq_idempotency_keys_api_key_key"),
        Index("ix_idempotency_keys_created", "created_at"),
    )

    id: Mapped[str] = mapped_column(String(32), primary_key=True, default=new_id)
    api_key_id: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(255))
    # SHA-256 of the route and the request's content: another body is a conflict.
    fingerprint: Mapped[str] = mapped_column(String(64))
    job_id: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
