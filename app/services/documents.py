"""A collection's documents: list and read them (web), and delete a document
or a whole collection as jobs (worker) that remove rows and index entries
together."""

from __future__ import annotations

from typing import Any

from sqlalchemy import String, cast, delete, func, or_, select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Chunk, Collection, Document, Job
from app.services import jobs
from app.services.collections import get_collection
from app.services.errors import NotFound
from app.services.indexing import index_store, sync_collection_index
from app.services.jobs import JobContext
from app.services.jobs.idempotency import Idempotency
from app.services.keys import Principal
from app.services.pagination import paginate


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
        if len(document_id) > 256 or "\x00" in document_id
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


def run_delete_document(ctx: JobContext) -> dict[str, Any]:
    """Remove the document's rows, then its vectors and keyword entries (a new
    index generation). Deleting what is already gone succeeds with 0."""
    document_id = ctx.params["document_id"]
    collection_id = ctx.require_collection_id()
    with db.session_scope() as session:
        internal_id = session.scalar(
            select(Document.id).where(Document.collection_id == collection_id, Document.external_id == document_id)
        )
        chunks = 0
        if internal_id is not None:
            chunks = session.execute(select(func.count()).where(Chunk.document_id == internal_id)).scalar_one()
            session.execute(delete(Chunk).where(Chunk.document_id == internal_id))
            session.execute(delete(Document).where(Document.id == internal_id))
        session.commit()
    generation = sync_collection_index(collection_id)
    return {
        "document_id": document_id,
        "deleted": internal_id is not None,
        "chunks": chunks,
        "index_generation": generation,
    }


def run_delete_collection(ctx: JobContext) -> dict[str, Any]:
    """Remove the collection's chunks, documents, row and index files."""
    collection_id = ctx.require_collection_id()
    with db.session_scope() as session:
        documents = session.scalar(select(func.count()).where(Document.collection_id == collection_id))
        chunks = session.scalar(select(func.count()).where(Chunk.collection_id == collection_id))
        session.execute(delete(Chunk).where(Chunk.collection_id == collection_id))
        session.execute(delete(Document).where(Document.collection_id == collection_id))
        session.execute(delete(Collection).where(Collection.id == collection_id))
        session.commit()
    index_store().drop(collection_id)
    return {"deleted": True, "documents": documents or 0, "chunks": chunks or 0}
