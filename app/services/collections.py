"""Collections: named, per-tenant sets of documents with one index each."""

from __future__ import annotations

import re

from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.models import Chunk, Collection, Document
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.pagination import paginate

# \Z, not $: "$" also matches before a trailing newline.
NAME_PATTERN = r"^[a-z0-9][a-z0-9_-]{0,63}\Z"
_NAME_RE = re.compile(NAME_PATTERN)
# flat: exact search; hnsw: approximate, for large collections (app/search/vector_index.py).
INDEX_TYPES = ("flat", "hnsw")


def validate_name(name: str) -> None:
    if not _NAME_RE.match(name or ""):
        raise ValidationFailed(
            f"{name!r} is not a valid collection name.",
            errors=[
                {
                    "field": "name",
                    "message": "Use 1-64 characters: lowercase letters, digits, '_' or '-', "
                    "starting with a letter or digit.",
                }
            ],
        )


def create_collection(
    session: Session,
    tenant_id: str,
    name: str,
    description: str | None = None,
    index_type: str = "flat",
) -> Collection:
    validate_name(name)
    if _find(session, tenant_id, name) is not None:
        raise Conflict(f"A collection named {name!r} already exists.")
    collection = Collection(tenant_id=tenant_id, name=name, description=description, index_type=index_type)
    session.add(collection)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        raise Conflict(f"A collection named {name!r} already exists.") from None
    return collection


def get_collection(session: Session, tenant_id: str, name: str) -> Collection:
    # A name that could never have been created is not looked up at all.
    collection = _find(session, tenant_id, name) if _NAME_RE.match(name) else None
    if collection is None:
        raise NotFound(f"No collection named {name!r}.")
    return collection


def get_or_create_collection(session: Session, tenant_id: str, name: str) -> Collection:
    validate_name(name)
    collection = _find(session, tenant_id, name)
    if collection is not None:
        return collection
    try:
        return create_collection(session, tenant_id, name)
    except Conflict:  # created by a concurrent request a moment ago
        return get_collection(session, tenant_id, name)


def list_collections(session: Session, tenant_id: str, *, limit: int, cursor: str | None):
    query = select(Collection).where(Collection.tenant_id == tenant_id)
    return paginate(session, query, Collection, limit, cursor)


def attach_stats(session: Session, collections: list[Collection]) -> list[Collection]:
    """Set `documents` and `chunks` counts on each collection, in two queries."""
    ids = [c.id for c in collections]
    if not ids:
        return collections
    docs = dict(
        session.execute(
            select(Document.collection_id, func.count())
            .where(Document.collection_id.in_(ids))
            .group_by(Document.collection_id)
        ).all()
    )
    chunks = dict(
        session.execute(
            select(Chunk.collection_id, func.count()).where(Chunk.collection_id.in_(ids)).group_by(Chunk.collection_id)
        ).all()
    )
    for collection in collections:
        collection.documents = docs.get(collection.id, 0)
        collection.chunks = chunks.get(collection.id, 0)
    return collections


def _find(session: Session, tenant_id: str, name: str) -> Collection | None:
    return session.scalars(select(Collection).where(Collection.tenant_id == tenant_id, Collection.name == name)).first()
