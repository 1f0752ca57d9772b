"""A collection's documents: list and read them, and submit the jobs that
delete a document or a whole collection (app/services/handlers/deletion.py
runs them)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, or_, select
from sqlalchemy.orm import Session

from app.models import DOCUMENT_ID_MAX_LENGTH, Collection, Document, Job
from app.services import jobs
from app.services.collections import get_collection
from app.services.errors import NotFound
from app.services.jobs.idempotency import Idempotency
from app.services.keys import Principal
from app.services.pagination import paginate
from app.services.storable import unstorable_values


def list_documents(
    session: Session,
    tenant_id: str,
    collection_name: str,
    *,
    limit: int,
    cursor: str | None,
    metadata: dict[str, Any] | None = None,
):
    """Documents newest first; with `metadata`, only those whose metadata has
    each key at that value (or at one of a list of values)."""
    collection = get_collection(session, tenant_id, collection_name)
    query = select(Document).where(Document.collection_id == collection.id)
    for key, wanted in (metadata or {}).items():
        values = wanted if isinstance(wanted, list) else [wanted]
        # The value as text on both databases: ->> on PostgreSQL; SQLite's
        # json_extract gives numbers as numbers, so cast them.
        as_text = cast(Document.meta[key].as_string(), String)
        query = query.where(or_(*(as_text.in_(_as_json_text(v)) for v in values)))
    return paginate(session, query, Document, limit, cursor)


def _as_json_text(value: Any) -> list[str]:
    if isinstance(value, bool):  # PostgreSQL says true, SQLite 1
        return ["true", "1"] if value else ["false", "0"]
    return [str(value)]


def get_document(session: Session, tenant_id: str, collection_name: str, document_id: str) -> Document:
    collection = get_collection(session, tenant_id, collection_name)
    # An id no document could have (too long, NUL) is not looked up at all.
    document = (
        None
        if len(document_id) > DOCUMENT_ID_MAX_LENGTH or unstorable_values(document_id)
        else session.scalars(
            select(Document).where(Document.collection_id == collection.id, Document.external_id == document_id)
        ).first()
    )
    if document is None:
        raise NotFound(f"No document {document_id!r} in collection {collection_name!r}.")
    return document


def submit_delete_document(
    session: Session,
    principal: Principal,
    collection_name: str,
    document_id: str,
    idempotency: Idempotency | None = None,
) -> Job:
    document = get_document(session, principal.tenant_id, collection_name, document_id)
    collection = session.get(Collection, document.collection_id)
    return jobs.submit(
        session,
        principal,
        "delete_document",
        params={"document_id": document_id},
        collection=collection,
        total=1,
        idempotency=idempotency,
    )


def submit_delete_collection(
    session: Session, principal: Principal, collection_name: str, idempotency: Idempotency | None = None
) -> Job:
    collection = get_collection(session, principal.tenant_id, collection_name)
    return jobs.submit(
        session, principal, "delete_collection", params={}, collection=collection, total=1, idempotency=idempotency
    )
