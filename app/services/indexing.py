"""Keeps each collection's FAISS index in step with its chunk rows.

The chunk rows are the truth; the index is derived. `sync_collection_index`
reconciles the two (adds chunks the index lacks, removes vectors whose chunk
is gone) so it is idempotent: a crashed writer's work is simply redone.
One writer per collection at a time, under a row lock on the collection.
"""

from __future__ import annotations

import logging

import faiss
import numpy as np
from sqlalchemy import select

from app.config import settings
from app.extensions import db
from app.models import Chunk, Collection
from app.search.embedding import Embedder, get_embedder
from app.search.index_store import IndexStore, VectorIndex

log = logging.getLogger(__name__)

_store: IndexStore | None = None
_FETCH_BATCH = 2000


def embedder() -> Embedder:
    return get_embedder(settings.embedding_model, settings.embed_batch_size)


def index_store() -> IndexStore:
    global _store
    if _store is None:
        _store = IndexStore(settings.index_dir, embedder().dimension)
    return _store


def vector_from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4")


def sync_collection_index(collection_id: str, *, rebuild: bool = False) -> int | None:
    """Bring the collection's index up to its chunk rows; returns the generation
    now current (None if the collection is gone). `rebuild` starts from empty.

    One writer per collection at a time: the collection's row stays locked
    until the new generation is committed (FOR NO KEY UPDATE on PostgreSQL,
    which leaves chunk inserts free to check their foreign key; SQLite's write
    transaction already admits one writer). The lock lives in SQL, like the
    data, so a job finishes even while Redis is down."""
    store = index_store()
    with db.session_scope() as session:
        collection = session.scalars(
            select(Collection).where(Collection.id == collection_id).with_for_update(key_share=True)
        ).first()
        if collection is None:
            store.drop(collection_id)
            return None
        generation = collection.generation
        index, added, removed = _reconciled(session, store, collection_id, generation, rebuild)
        if index is None:
            return generation
        # The file first, then the row that points readers at it.
        new_generation = generation + 1
        store.save(collection_id, new_generation, index)
        collection.generation = new_generation
        session.commit()
    log.info(
        "index %s: generation %d, +%d -%d vectors, %d total",
        collection_id, new_generation, added, removed, index.size,
    )
    return new_generation


def _reconciled(
    session, store: IndexStore, collection_id: str, generation: int, rebuild: bool
) -> tuple[VectorIndex | None, int, int]:
    """A copy of the current index with the chunk rows' changes applied, and
    how many vectors were added and removed; None when nothing changed."""
    current = None if rebuild else store.get(collection_id, generation)
    chunk_ids = np.fromiter(
        session.scalars(select(Chunk.id).where(Chunk.collection_id == collection_id)), dtype="int64"
    )
    # Work on a copy: the cached index belongs to `generation` until the new
    # one is committed.
    index = (
        VectorIndex(store.dimension, faiss.clone_index(current.index))
        if current is not None
        else VectorIndex(store.dimension)
    )
    indexed = index.ids()
    to_add = np.setdiff1d(chunk_ids, indexed)
    to_remove = np.setdiff1d(indexed, chunk_ids)
    if current is not None and not len(to_add) and not len(to_remove):
        return None, 0, 0
    index.remove(to_remove)
    for start in range(0, len(to_add), _FETCH_BATCH):
        batch = [int(i) for i in to_add[start : start + _FETCH_BATCH]]
        rows = session.execute(select(Chunk.id, Chunk.embedding).where(Chunk.id.in_(batch))).all()
        if rows:
            ids = np.array([r.id for r in rows], dtype="int64")
            index.add(ids, np.vstack([vector_from_bytes(r.embedding) for r in rows]))
    return index, len(to_add), len(to_remove)


def index_for_search(collection: Collection) -> tuple[VectorIndex, int]:
    """The collection's current index, reloaded if its generation moved and
    rebuilt from the chunk rows if its file is missing."""
    store = index_store()
    index = store.get(collection.id, collection.generation)
    if index is not None:
        return index, collection.generation
    log.warning("index file for %s generation %d missing; rebuilding", collection.id, collection.generation)
    generation = sync_collection_index(collection.id, rebuild=True)
    if generation is None:
        raise LookupError(collection.id)
    return store.get(collection.id, generation), generation
