"""Search: submit a search job (web), run it against the collection's index (worker)."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.extensions import db
from app.models import Chunk, Collection, Document, Job
from app.search.pipelines import PIPELINES
from app.services import jobs
from app.services.collections import get_collection
from app.services.errors import JobFailure
from app.services.indexing import embedder, index_for_search
from app.services.jobs import JobContext
from app.services.keys import Principal


def submit_search(
    session: Session, principal: Principal, collection_name: str, params: dict[str, Any]
) -> Job:
    collection = get_collection(session, principal.tenant_id, collection_name)
    return jobs.submit(session, principal, "search", params=params, collection=collection, total=1)


def run_search(ctx: JobContext) -> dict[str, Any]:
    started = time.perf_counter()
    params = ctx.params
    with db.session_scope() as session:
        collection = session.get(Collection, ctx.collection_id)
        if collection is None:
            raise JobFailure("not_found", "The collection was deleted before the search ran.")
        allowed = _allowed_chunk_ids(session, collection.id, params.get("filters") or {})
    index, generation = index_for_search(collection)
    pipeline = PIPELINES[params["pipeline"]](embedder())
    ranked = pipeline.search(index, [params["query"]], params["top_k"], allowed)[0]
    with db.session_scope() as session:
        hits = _hydrate(session, ranked)
    return {
        "hits": hits,
        "pipeline": params["pipeline"],
        "took_ms": round((time.perf_counter() - started) * 1000, 2),
        "index_generation": generation,
    }


def _allowed_chunk_ids(
    session: Session, collection_id: str, filters: dict[str, Any]
) -> np.ndarray | None:
    """Chunk ids of the documents whose metadata matches every filter (a value,
    or a list of accepted values); None when there are no filters."""
    if not filters:
        return None
    wanted = {k: (v if isinstance(v, list) else [v]) for k, v in filters.items()}
    matching = [
        doc_id
        for doc_id, meta in session.execute(
            select(Document.id, Document.meta).where(Document.collection_id == collection_id)
        )
        if all(key in (meta or {}) and meta[key] in values for key, values in wanted.items())
    ]
    if not matching:
        return np.zeros(0, dtype="int64")
    ids: list[int] = []
    for start in range(0, len(matching), 500):
        ids.extend(
            session.scalars(
                select(Chunk.id).where(Chunk.document_id.in_(matching[start : start + 500]))
            )
        )
    return np.array(ids, dtype="int64")


def _hydrate(session: Session, ranked: list[tuple[int, float]]) -> list[dict[str, Any]]:
    if not ranked:
        return []
    rows = {
        chunk.id: (chunk, document)
        for chunk, document in session.execute(
            select(Chunk, Document)
            .join(Document, Chunk.document_id == Document.id)
            .where(Chunk.id.in_([chunk_id for chunk_id, _ in ranked]))
        )
    }
    hits = []
    for chunk_id, score in ranked:
        if chunk_id not in rows:  # deleted since the index was written
            continue
        chunk, document = rows[chunk_id]
        hits.append(
            {
                "document_id": document.external_id,
                "chunk_id": str(chunk.id),
                "score": round(score, 6),
                "text": chunk.text,
                "metadata": document.meta or {},
            }
        )
    return hits
