"""What a search needs around its pipeline (worker side): the per-generation
document map for filters and collapse, the pipelines' shared resources, the
ranking loop that collapses hits per document, and hydration of chunk ids
into hits."""

from __future__ import annotations

from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import db, settings
from app.models import Chunk, Document
from app.search.document_map import DocumentMap
from app.search.index_store import CollectionIndex
from app.search.pipelines import Pipeline, Ranking, SearchResources
from app.services.handlers.indexing import embedder, index_store

# A collapsed search first asks for this many chunks per wanted document, and
# asks again for more while one long document crowds out the rest.
COLLAPSE_OVERFETCH = 4

_resources: SearchResources | None = None


def document_map(collection_id: str, generation: int) -> DocumentMap:
    """The collection's chunk → document map and metadata postings, built once
    per generation and kept with its indexes, within the index memory budget
    (a write moves the generation)."""
    store = index_store()
    cached = store.documents(collection_id, generation)
    if cached is not None:
        return cached
    with db.session_scope() as session:
        documents = session.execute(
            select(Document.id, Document.external_id, Document.meta).where(Document.collection_id == collection_id)
        ).all()
        position = {row.id: i for i, row in enumerate(documents)}
        chunks = [
            (chunk_id, position[document_id])
            for chunk_id, document_id in session.execute(
                select(Chunk.id, Chunk.document_id).where(Chunk.collection_id == collection_id)
            )
            if document_id in position
        ]
    built = DocumentMap(
        np.array([c for c, _ in chunks], dtype="int64"),
        np.array([d for _, d in chunks], dtype="int64"),
        [row.external_id for row in documents],
        [row.meta or {} for row in documents],
    )
    store.attach_documents(collection_id, generation, built)
    return built


def search_resources() -> SearchResources:
    global _resources
    if _resources is None:
        _resources = SearchResources(encoder=embedder(), chunk_texts=chunk_texts, settings=settings)
    return _resources


def chunk_texts(chunk_ids: list[int]) -> dict[int, str]:
    if not chunk_ids:
        return {}
    with db.session_scope() as session:
        return dict(session.execute(select(Chunk.id, Chunk.text).where(Chunk.id.in_(set(chunk_ids)))).all())


def ranked(
    pipeline: Pipeline,
    index: CollectionIndex,
    queries: list[str],
    *,
    top_k: int,
    allowed_ids: np.ndarray | None,
    documents: DocumentMap | None,
) -> list[Ranking]:
    """Each query's top_k chunks, or with `documents`, its top_k documents,
    each at its best chunk's rank."""
    if documents is None:
        return pipeline.search(index, queries, top_k, allowed_ids)
    most = max(index.vectors.size, index.keywords.size)
    depth = top_k * COLLAPSE_OVERFETCH
    while True:
        rankings = pipeline.search(index, queries, depth, allowed_ids)
        collapsed = [_best_per_document(ranking, documents)[:top_k] for ranking in rankings]
        crowded = any(len(best) < top_k and len(ranking) >= depth for best, ranking in zip(collapsed, rankings))
        if not crowded or depth >= most:
            return collapsed
        depth *= COLLAPSE_OVERFETCH


def _best_per_document(ranking: Ranking, documents: DocumentMap) -> Ranking:
    seen: set[int] = set()
    best = []
    for (chunk_id, score), document in zip(ranking, documents.document_of(c for c, _ in ranking)):
        # A chunk without a document was deleted since the index was written.
        if document is not None and document not in seen:
            seen.add(document)
            best.append((chunk_id, score))
    return best


def hydrate(session: Session, rankings: list[Ranking]) -> list[list[dict[str, Any]]]:
    """Hits with their text and document, one query for every ranking."""
    wanted = {chunk_id for ranking in rankings for chunk_id, _ in ranking}
    if not wanted:
        return [[] for _ in rankings]
    # Columns, not ORM objects: a search reads its hits and never changes them.
    rows = {
        chunk_id: (text, external_id, meta)
        for chunk_id, text, external_id, meta in session.execute(
            select(Chunk.id, Chunk.text, Document.external_id, Document.meta)
            .join(Document, Chunk.document_id == Document.id)
            .where(Chunk.id.in_(wanted))
        )
    }
    return [
        [
            {
                "document_id": rows[chunk_id][1],
                "chunk_id": str(chunk_id),
                "score": round(score, 6),
                "text": rows[chunk_id][0],
                "metadata": rows[chunk_id][2] or {},
            }
            for chunk_id, score in ranking
            if chunk_id in rows  # deleted since the index was written
        ]
        for ranking in rankings
    ]
