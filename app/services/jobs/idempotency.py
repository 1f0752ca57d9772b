"""Idempotent submits: a client that retries a submit with the same
`Idempotency-Key` (per API key) and the same request within 24 hours gets the
job its first attempt created, and creates nothing; the same key with a
different request is a conflict."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from app.models import IdempotencyKey, Job, execute_counted, utcnow
from app.services.errors import Conflict
from app.services.keys import Principal

KEY_LIFETIME = timedelta(hours=24)


@dataclass(frozen=True)
class Idempotency:
    key: str
    # What the request asked for (route and content), hashed by the web layer.
    fingerprint: str


def replay(session: Session, principal: Principal, idempotency: Idempotency) -> Job | None:
    """The job an earlier request with this key created, marked `replayed`;
    None when the key is new (or older than 24 h, and then forgotten).
    Raises Conflict when the key was used for a different request."""
    row = session.scalars(
        select(IdempotencyKey).where(
            IdempotencyKey.api_key_id == principal.key_id, IdempotencyKey.key == idempotency.key
        )
    ).first()
    if row is None:
        return None
    job = session.get(Job, row.job_id)
    if row.created_at < utcnow() - KEY_LIFETIME or job is None:
        session.delete(row)
        session.flush()
        return None
    if row.fingerprint != idempotency.fingerprint:
        raise Conflict(
            "This Idempotency-Key was used for a different request in the last 24 hours; "
            "use a new key for a new request."
        )
    job.replayed = True
    return job


def remember(session: Session, principal: Principal, idempotency: Idempotency, job: Job) -> None:
    """Record the key in the transaction that creates the job: a concurrent
    first request with the same key fails to commit and replays this one."""
    session.add(
        IdempotencyKey(
            api_key_id=principal.key_id, key=idempotency.key, fingerprint=idempotency.fingerprint, job_id=job.id
        )
    )


def purge_expired_keys(session: Session) -> int:
    deleted = execute_counted(
        session, delete(IdempotencyKey).where(IdempotencyKey.created_at < utcnow() - KEY_LIFETIME)
    )
    session.commit()
    return deleted
