"""Deletion jobs, worker side: remove a document's or a whole collection's
rows and index entries together."""

from __future__ import annotations

from typing import Any

from sqlalchemy import delete, func, select

from app.extensions import db
from app.models import Chunk, Collection, Document
from app.services.handlers.indexing import index_store, sync_collection_index
from app.services.jobs import JobContext


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
