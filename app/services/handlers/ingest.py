"""Ingestion (worker side): extract → de-duplicate → chunk → embed → store →
index, a batch of documents at a time, with a checkpoint after each batch.

Idempotent by construction: a document is keyed by its content hash within
its collection, so running the same job again — after a worker was killed,
say — writes no second copy of anything it already wrote. De-duplication
comes before chunking because a duplicate needs no chunking at all.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.extensions import db, settings
from app.models import Chunk, Collection, Document
from app.search.chunking import TextChunk, chunk_text
from app.search.embedding import Embedder
from app.search.extract import ExtractionError, extract
from app.services.errors import JobFailure
from app.services.handlers import embedding_threads
from app.services.handlers.indexing import embedder, sync_collection_index
from app.services.jobs import JobCancelled, JobContext
from app.services.staging_area import StagedUploadMissing, staging_area

DOCS_PER_CHECKPOINT = 16
CHUNKS_PER_ENCODE = 256


@dataclass(frozen=True)
class IncomingDocument:
    """A document as extracted from the upload, or why it could not be."""

    source: str
    external_id: str | None
    text: str | None
    metadata: dict[str, Any]
    error: str | None = None


@dataclass(frozen=True)
class NewDocument:
    """A document not stored yet, chunked and ready to embed."""

    incoming: IncomingDocument
    digest: str
    pieces: list[TextChunk]


@dataclass(frozen=True)
class Tally:
    """What a job (or one batch of it) did; batches add up."""

    documents: int = 0
    chunks: int = 0
    skipped_duplicates: int = 0
    failed: tuple[dict[str, str], ...] = field(default=())

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.documents + other.documents,
            self.chunks + other.chunks,
            self.skipped_duplicates + other.skipped_duplicates,
            self.failed + other.failed,
        )

    def as_result(self, index_generation: int | None = None) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "chunks": self.chunks,
            "skipped_duplicates": self.skipped_duplicates,
            "failed": list(self.failed),
            "index_generation": index_generation,
        }


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_ingest(ctx: JobContext) -> dict[str, Any]:
    """The job's handler. Its staged upload is removed once the job's final
    status is committed (the kind's on_finish, app/services/jobs/kinds.py)."""
    collection_id = ctx.require_collection_id()
    with db.session_scope() as session:
        if session.get(Collection, collection_id) is None:
            raise JobFailure("not_found", "The collection was deleted before the job ran.")
    model = embedder()
    tally, seen, processed = Tally(), frozenset[str](), 0
    try:
        for batch in _batches(_extract(ctx.job_id, ctx.params["sources"]), DOCS_PER_CHECKPOINT):
            outcome, seen = _ingest_batch(ctx, model, batch, seen, processed)
            tally, processed = tally + outcome, processed + len(batch)
            ctx.checkpoint(processed, partial_result=tally.as_result())
    except JobCancelled:
        # What was committed stays, and is made searchable.
        ctx.partial_result = tally.as_result(sync_collection_index(collection_id))
        raise
    return tally.as_result(sync_collection_index(collection_id))


def _ingest_batch(
    ctx: JobContext, model: Embedder, batch: list[IncomingDocument], seen: frozenset[str], processed: int
) -> tuple[Tally, frozenset[str]]:
    extracted = [doc for doc in batch if doc.error is None]
    unreadable = Tally(failed=tuple({"source": d.source, "error": d.error} for d in batch if d.error))
    with db.session_scope() as session:
        fresh, known, seen = _deduplicate(session, ctx, extracted, seen)
    chunked, empty = _chunk(fresh, model)
    vectors = _embed(ctx, model, chunked, processed)
    stored = _store(ctx, chunked, vectors)
    return unreadable + known + empty + stored, seen


def _extract(job_id: str, sources: list[dict[str, Any]]) -> Iterator[IncomingDocument]:
    area = staging_area()
    for source in sources:
        try:
            data = area.read(job_id, source["path"])
        except StagedUploadMissing:
            raise JobFailure(
                "upload_missing",
                "The uploaded files are no longer in the upload store; submit them again.",
            ) from None
        if source["kind"] == "documents":
            for position, doc in enumerate(json.loads(data)):
                yield IncomingDocument(
                    source=doc.get("id") or f"documents[{position}]",
                    external_id=doc.get("id"),
                    text=doc["text"],
                    metadata=doc.get("metadata") or {},
                )
            continue
        yield from _extract_file(source, data)


def _extract_file(source: dict[str, Any], data: bytes) -> Iterator[IncomingDocument]:
    """A file's documents (one, or one per JSON record); a file that cannot be
    read fails alone, as one entry in the job's `failed`."""
    filename = source["filename"]
    metadata = {"filename": filename, **(source.get("metadata") or {})}
    try:
        texts = extract(filename, data, max_chars=settings.max_extracted_chars)
        for text in texts:
            _check_storable(text.source, text.external_id, text.text, text.metadata)
    except ExtractionError as exc:
        yield IncomingDocument(filename, filename, None, metadata, error=str(exc))
        return
    for text in texts:
        yield IncomingDocument(
            source=text.source,
            # A record's own id, else the filename (one text) or its source ("name.jsonl[3]").
            external_id=text.external_id or (filename if len(texts) == 1 else text.source),
            text=text.text,
            metadata={**metadata, **text.metadata},
        )


# Text no database stores faithfully: NUL, and unpaired UTF-16 surrogates
# (which JSON escapes can spell). The API refuses them in JSON bodies; files
# are checked here, so one bad record fails its file, not the whole batch.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")
MAX_ID_LENGTH = 256


def _check_storable(source: str, external_id: str | None, text: str, metadata: dict[str, Any]) -> None:
    if external_id is not None and len(external_id) > MAX_ID_LENGTH:
        raise ExtractionError(f"{source}: the id is longer than {MAX_ID_LENGTH} characters")
    if (
        _UNSTORABLE.search(text)
        or _UNSTORABLE.search(external_id or "")
        or _UNSTORABLE.search(json.dumps(metadata, ensure_ascii=False))
    ):
        raise ExtractionError(f"{source}: holds NUL characters or unpaired surrogates, which cannot be stored")


def _deduplicate(
    session: Session, ctx: JobContext, docs: list[IncomingDocument], seen: frozenset[str]
) -> tuple[list[tuple[IncomingDocument, str]], Tally, frozenset[str]]:
    """Split off documents already stored: by this job on an earlier attempt
    (counted as this job's own work), by someone else, or earlier in this job
    (skipped as duplicates). Returns the rest with their content hashes."""
    fresh: list[tuple[IncomingDocument, str]] = []
    known = Tally()
    for doc in docs:
        assert doc.text is not None  # only readable documents (no error) come here
        digest = content_hash(doc.text)
        if digest in seen:
            known += Tally(skipped_duplicates=1)
            continue
        seen = seen | {digest}
        existing = session.scalars(
            select(Document).where(Document.collection_id == ctx.collection_id, Document.content_hash == digest)
        ).first()
        if existing is None:
            fresh.append((doc, digest))
        elif existing.ingest_job_id == ctx.job_id:
            known += Tally(documents=1, chunks=existing.chunk_count)
        else:
            known += Tally(skipped_duplicates=1)
    return fresh, known, seen


def _chunk(docs: list[tuple[IncomingDocument, str]], model: Embedder) -> tuple[list[NewDocument], Tally]:
    chunked, failed = [], []
    for doc, digest in docs:
        assert doc.text is not None  # only readable documents (no error) come here
        pieces = chunk_text(doc.text, model.tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens)
        if pieces:
            chunked.append(NewDocument(doc, digest, pieces))
        else:
            failed.append({"source": doc.source, "error": "the document holds no text"})
    return chunked, Tally(failed=tuple(failed))


def _embed(ctx: JobContext, model: Embedder, docs: list[NewDocument], processed: int) -> np.ndarray:
    texts = [piece.text for doc in docs for piece in doc.pieces]
    parts = []
    with embedding_threads.ingest_embedding(ctx.job_id):
        for start in range(0, len(texts), CHUNKS_PER_ENCODE):
            embedding_threads.before_batch(ctx.job_id)  # every core while it is the only ingest
            parts.append(model.encode(texts[start : start + CHUNKS_PER_ENCODE]))
            ctx.checkpoint(processed)  # long documents: keep the lease alive
    return np.vstack(parts) if parts else np.zeros((0, model.dimension), dtype="float32")


def _store(ctx: JobContext, docs: list[NewDocument], vectors: np.ndarray) -> Tally:
    """Write each new document with its chunks and vectors, replacing an
    older version under the same id; one transaction for the batch."""
    stored = Tally()
    position = 0
    with db.session_scope() as session:
        for doc in docs:
            doc_vectors = vectors[position : position + len(doc.pieces)]
            position += len(doc.pieces)
            try:
                with session.begin_nested():
                    _replace_document(session, ctx, doc, doc_vectors)
            except IntegrityError:
                if session.scalar(select(Collection.id).where(Collection.id == ctx.collection_id)) is None:
                    raise JobFailure("not_found", "The collection was deleted while the job ran.") from None
                # A concurrent job stored the same content a moment ago.
                stored += Tally(skipped_duplicates=1)
                continue
            stored += Tally(documents=1, chunks=len(doc.pieces))
        session.commit()
    return stored


def _replace_document(session: Session, ctx: JobContext, doc: NewDocument, vectors: np.ndarray) -> None:
    external_id = doc.incoming.external_id or f"doc_{doc.digest[:24]}"
    older = session.scalars(
        select(Document).where(Document.collection_id == ctx.collection_id, Document.external_id == external_id)
    ).first()
    if older is not None:  # same id, new content: a new version
        session.delete(older)
        session.flush()
    document = Document(
        tenant_id=ctx.tenant_id,
        collection_id=ctx.collection_id,
        external_id=external_id,
        content_hash=doc.digest,
        meta=doc.incoming.metadata,
        source=doc.incoming.source,
        chunk_count=len(doc.pieces),
        ingest_job_id=ctx.job_id,
    )
    document.chunks = [
        Chunk(
            tenant_id=ctx.tenant_id,
            collection_id=ctx.collection_id,
            ordinal=ordinal,
            text=piece.text,
            start_char=piece.start,
            end_char=piece.end,
            embedding=vector.astype("<f4").tobytes(),
        )
        for ordinal, (piece, vector) in enumerate(zip(doc.pieces, vectors))
    ]
    session.add(document)


def _batches(items: Iterable[IncomingDocument], size: int) -> Iterator[list[IncomingDocument]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
