"""Keeps each collection's indexes (vectors and keywords) in step with its chunk rows.

The chunk rows are the truth; the index is derived. `sync_collection_index`
reconciles the two (adds chunks the index lacks, removes vectors whose chunk
is gone) so it is idempotent: a crashed writer's work is simply redone.
One writer per collection at a time, under a row lock on the collection.
"""

from __future__ import annotations

import logging

import numpy as np
from sqlalchemy import select

from app.extensions import db, settings
from app.models import Chunk, Collection
from app.search.embedding import Embedder, get_embedder
from app.search.index_store import CollectionIndex, IndexStore
from app.search.keyword_index import KeywordIndex
from app.search.vector_index import HnswParams, VectorIndex

log = logging.getLogger(__name__)

_store: IndexStore | None = None
_FETCH_BATCH = 2000


def embedder() -> Embedder:
    return get_embedder(settings.embedding_model, settings.embed_batch_size)


def hnsw_params() -> HnswParams:
    return HnswParams(settings.hnsw_m, settings.hnsw_ef_construction, settings.hnsw_ef_search)


def index_store() -> IndexStore:
    global _store
    if _store is None:
        budget = settings.index_cache_mb * 1024 * 1024 if settings.index_cache_mb > 0 else None
        _store = IndexStore(settings.index_dir, embedder().dimension, hnsw_params(), budget)
    return _store


def vector_from_bytes(raw: bytes) -> np.ndarray:
    return np.frombuffer(raw, dtype="<f4")


def sync_collection_index(
    collection_id: str, *, rebuild: bool = False, missing_generation: int | None = None
) -> int | None:
    """Bring the collection's indexes up to its chunk rows; returns the
    generation now current (None if the collection is gone). `rebuild` starts
    from empty. `missing_generation`: a reader found that generation's files
    missing; rebuild only if it is still current and still missing (another
    reader may have rebuilt it, or a writer moved on, a moment ago).

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
        current = None if rebuild else store.get(collection_id, generation, collection.index_type)
        if missing_generation is not None:
            if generation != missing_generation or current is not None:
                return generation
            current = None
        chunk_ids = np.fromiter(
            session.scalars(select(Chunk.id).where(Chunk.collection_id == collection_id).order_by(Chunk.id)),
            dtype="int64",
        )
        vectors, added, removed = _reconciled_vectors(session, store, collection.index_type, current, chunk_ids)
        if vectors is None:
            return generation
        # Files missing here (a new host, a worker dyno without a shared
        # INDEX_DIR) are rebuilt under the same generation: the rows have not
        # changed, and a new number would send every other host rebuilding.
        next_generation = generation if missing_generation is not None else generation + 1
        updated = CollectionIndex(next_generation, vectors, _keyword_index(session, collection_id, chunk_ids))
        # The files first, then the row that points readers at them; this
        # process serves the new generation only once it is committed.
        store.save(collection_id, updated)
        collection.generation = updated.generation
        session.commit()
    store.remember(collection_id, updated)
    log.info(
        "index %s: generation %d, +%d -%d vectors, %d total",
        collection_id,
        updated.generation,
        added,
        removed,
        vectors.size,
    )
    return updated.generation


def _reconciled_vectors(
    session, store: IndexStore, index_type: str, current: CollectionIndex | None, chunk_ids: np.ndarray
) -> tuple[VectorIndex | None, int, int]:
    """A copy of the current vector index with the chunk rows' changes applied,
    and how many vectors were added and removed; None when nothing changed.
    Starts from empty when there is no usable current index: none loaded, the
    collection's index type changed, an hnsw index full of tombstones, or one
    that would have to take back an id it already holds."""
    index = current.vectors if current is not None else None
    indexed = index.ids() if index is not None else np.zeros(0, dtype="int64")
    to_add = np.setdiff1d(chunk_ids, indexed)
    to_remove = np.setdiff1d(indexed, chunk_ids)
    if index is not None and not len(to_add) and not len(to_remove):
        return None, 0, 0
    if index is not None and (
        index.index_type != index_type
        or not index.can_add(to_add)
        or index.tombstone_fraction_after(len(to_remove)) > settings.hnsw_rebuild_fraction
    ):
        index = None
    if index is None:
        to_add, to_remove = chunk_ids, np.zeros(0, dtype="int64")
        # Work on a fresh index: the cached one belongs to the current
        # generation until the new one is committed.
        index = VectorIndex.create(store.dimension, index_type, store.hnsw)
    else:
        index = index.copy()
    index.remove(to_remove)
    for start in range(0, len(to_add), _FETCH_BATCH):
        batch = [int(i) for i in to_add[start : start + _FETCH_BATCH]]
        rows = session.execute(select(Chunk.id, Chunk.embedding).where(Chunk.id.in_(batch))).all()
        if rows:
            ids = np.array([r.id for r in rows], dtype="int64")
            index.add(ids, np.vstack([vector_from_bytes(r.embedding) for r in rows]))
    return index, len(to_add), len(to_remove)


def _keyword_index(session, collection_id: str, chunk_ids: np.ndarray) -> KeywordIndex:
    """BM25 over every chunk of the collection (bm25s builds whole indexes only)."""
    texts = dict(session.execute(select(Chunk.id, Chunk.text).where(Chunk.collection_id == collection_id)).all())
    ids = [int(i) for i in chunk_ids if int(i) in texts]
    return KeywordIndex.build(np.array(ids, dtype="int64"), [texts[i] for i in ids])


def index_for_search(collection_id: str) -> CollectionIndex:
    """The collection's current indexes, reloaded if its generation moved and
    rebuilt from the chunk rows if their files are missing. Raises LookupError
    when the collection is gone."""
    store = index_store()
    for _attempt in range(3):
        with db.reads_only(), db.session_scope() as session:
            row = session.execute(
                select(Collection.generation, Collection.index_type).where(Collection.id == collection_id)
            ).first()
        if row is None:
            raise LookupError(collection_id)
        index = store.get(collection_id, row.generation, row.index_type)
        if index is not None:
            return index
        # Older generations are pruned as newer ones are written: the files
        # may be gone because a writer moved on. Only a current generation
        # without files is rebuilt.
        log.warning("index files for %s generation %d missing", collection_id, row.generation)
        if sync_collection_index(collection_id, missing_generation=row.generation) is None:
            raise LookupError(collection_id)
    raise RuntimeError(f"the indexes of collection {collection_id} keep moving; try again")
