"""Ingestion (worker side): extract → de-duplicate → chunk → embed → store →
index, a batch of documents at a time, with a checkpoint after each batch.

Idempotent by construction: a document is keyed by its id and content hash
within its collection, so running the same job again — after a worker was
killed, say — writes no second copy of anything it already wrote.
De-duplication comes before chunking because a duplicate needs no chunking
at all, and a new id for a text already stored reuses its chunks' vectors.

A job never fails as a whole for one document's content: a document (or a
file, or a JSON record) that cannot be read or stored fails alone, as one
entry in the result's `failed`.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import DataError, IntegrityError
from sqlalchemy.orm import Session

from app.extensions import db, settings
from app.models import DOCUMENT_ID_MAX_LENGTH, DOCUMENT_SOURCE_MAX_LENGTH, Chunk, Collection, Document
from app.search.chunking import TextChunk, chunk_text
from app.search.embedding import Embedder
from app.search.extract import ExtractedText, ExtractionError, extract
from app.services.errors import JobFailure
from app.services.handlers import embedding_threads
from app.services.handlers.indexing import embedder, sync_collection_index
from app.services.jobs import JobCancelled, JobContext
from app.services.staging_area import StagedUploadMissing, staging_area
from app.services.storable import clean_filename, storable_text, unstorable_values

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
    """A document not stored yet: chunked, then embedded. One whose text is
    stored under another id comes with that document's pieces and vectors."""

    incoming: IncomingDocument
    digest: str
    external_id: str
    pieces: list[TextChunk] = field(default_factory=list)
    vectors: np.ndarray | None = None
    same_text_as: str | None = None  # another document of the collection with this text


@dataclass(frozen=True)
class Tally:
    """What a job (or one batch of it) did; batches add up."""

    documents: int = 0
    chunks: int = 0
    skipped_duplicates: int = 0
    failed: tuple[dict[str, str], ...] = field(default=())
    same_text: tuple[dict[str, str], ...] = field(default=())

    def __add__(self, other: Tally) -> Tally:
        return Tally(
            self.documents + other.documents,
            self.chunks + other.chunks,
            self.skipped_duplicates + other.skipped_duplicates,
            self.failed + other.failed,
            self.same_text + other.same_text,
        )

    @staticmethod
    def failure(source: str, error: str) -> Tally:
        # The report is stored too: what made the document unstorable must not make the result so.
        return Tally(failed=({"source": storable_text(source), "error": storable_text(error)},))

    @staticmethod
    def stored(external_id: str, chunks: int, same_text_as: str | None) -> Tally:
        same = ({"id": external_id, "same_text_as": same_text_as},) if same_text_as else ()
        return Tally(documents=1, chunks=chunks, same_text=same)

    def as_result(self, index_generation: int | None = None) -> dict[str, Any]:
        return {
            "documents": self.documents,
            "chunks": self.chunks,
            "skipped_duplicates": self.skipped_duplicates,
            "failed": list(self.failed),
            "same_text": list(self.same_text),
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
    tally, processed = Tally(), 0
    seen: Seen = {}
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


# Content hash -> the ids this job has met it under, in order.
Seen = dict[str, tuple[str, ...]]


def _ingest_batch(
    ctx: JobContext, model: Embedder, batch: list[IncomingDocument], seen: Seen, processed: int
) -> tuple[Tally, Seen]:
    extracted = [doc for doc in batch if doc.error is None]
    unreadable = sum((Tally.failure(d.source, d.error) for d in batch if d.error), Tally())
    with db.session_scope() as session:
        new, known, seen = _deduplicate(session, ctx, extracted, seen)
    chunked, empty = _chunk(new, model)
    stored = _store(ctx, _embed(ctx, model, chunked, processed))
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
            docs = _staged_documents(data)
        else:
            docs = _extract_file(source, data)
        yield from (_checked(doc) for doc in docs)


def _staged_documents(data: bytes) -> Iterator[IncomingDocument]:
    for position, doc in enumerate(json.loads(data)):
        yield IncomingDocument(
            source=doc.get("id") or f"documents[{position}]",
            external_id=doc.get("id"),
            text=doc["text"],
            metadata=doc.get("metadata") or {},
        )


def _extract_file(source: dict[str, Any], data: bytes) -> Iterator[IncomingDocument]:
    """A file's documents (one, or one per JSON record); a file or a record
    that cannot be read fails alone, as one entry in the job's `failed`."""
    filename = clean_filename(source["filename"])  # cleaned at upload too; a job queued earlier may not be
    metadata = {"filename": filename, **(source.get("metadata") or {})}
    try:
        texts = extract(filename, data, max_chars=settings.max_extracted_chars)
    except ExtractionError as exc:
        yield IncomingDocument(filename, filename, None, metadata, error=str(exc))
        return
    for text in texts:
        yield _incoming(text, metadata, filename if len(texts) == 1 else text.source)


def _incoming(text: ExtractedText, file_metadata: dict[str, Any], default_id: str) -> IncomingDocument:
    # A record's own id, else the filename (one text) or its source ("name.jsonl[3]").
    external_id = text.external_id or default_id
    metadata = {**file_metadata, **text.metadata}
    return IncomingDocument(text.source, external_id, text.text if text.error is None else None, metadata, text.error)


def _checked(doc: IncomingDocument) -> IncomingDocument:
    """The document, or why no database can store it: the same reason on
    SQLite and PostgreSQL, found before any SQL sees it."""
    if doc.error is not None:
        return doc
    if doc.external_id is not None and len(doc.external_id) > DOCUMENT_ID_MAX_LENGTH:
        return dataclasses.replace(doc, error=f"the id is longer than {DOCUMENT_ID_MAX_LENGTH} characters")
    if len(doc.source) > DOCUMENT_SOURCE_MAX_LENGTH:
        return dataclasses.replace(doc, error=f"the name is longer than {DOCUMENT_SOURCE_MAX_LENGTH} characters")
    found = unstorable_values({"id": doc.external_id or "", "text": doc.text, "metadata": doc.metadata})
    if found:
        path, message = found[0]
        return dataclasses.replace(doc, error=f"{'.'.join(map(str, path))}: {message}")
    return doc


def _deduplicate(
    session: Session, ctx: JobContext, docs: list[IncomingDocument], seen: Seen
) -> tuple[list[NewDocument], Tally, Seen]:
    """Split off documents already stored under their id with this text: by
    this job on an earlier attempt (counted as this job's own work), by
    someone else, or earlier in this job (skipped as duplicates). A text
    stored under another id is skipped too when the document has no id of
    its own; else it is stored under its id, with the other's vectors."""
    new: list[NewDocument] = []
    known = Tally()
    for doc in docs:
        assert doc.text is not None  # only readable documents (no error) come here
        digest = content_hash(doc.text)
        external_id = doc.external_id or f"doc_{digest[:24]}"
        earlier = seen.get(digest, ())
        if external_id in earlier:
            known += Tally(skipped_duplicates=1)
            continue
        seen = {**seen, digest: (*earlier, external_id)}
        same_text = _stored_with_text(session, ctx, digest)
        mine = next((d for d in same_text if d.external_id == external_id), None)
        others = [d for d in same_text if d is not mine]
        # Named as a twin: met earlier in this job, or stored before it.
        twin = earlier[0] if earlier else next((d.external_id for d in others if d.ingest_job_id != ctx.job_id), None)
        if mine is not None:
            own_work = mine.ingest_job_id == ctx.job_id
            known += Tally.stored(external_id, mine.chunk_count, twin) if own_work else Tally(skipped_duplicates=1)
        elif twin is not None and doc.external_id is None:
            known += Tally(skipped_duplicates=1)
        else:
            new.append(_reusing(session, NewDocument(doc, digest, external_id, same_text_as=twin), others))
    return new, known, seen


def _stored_with_text(session: Session, ctx: JobContext, digest: str) -> list[Document]:
    query = select(Document).where(Document.collection_id == ctx.collection_id, Document.content_hash == digest)
    return list(session.scalars(query.order_by(Document.created_at, Document.id)))


def _reusing(session: Session, doc: NewDocument, same_text: list[Document]) -> NewDocument:
    """The document with the pieces and vectors of one already stored with
    its text, if any: the same text needs no second chunking or encoding."""
    if not same_text:
        return doc
    chunks = session.scalars(select(Chunk).where(Chunk.document_id == same_text[0].id).order_by(Chunk.ordinal)).all()
    pieces = [TextChunk(chunk.text, chunk.start_char, chunk.end_char) for chunk in chunks]
    vectors = np.vstack([np.frombuffer(chunk.embedding, dtype="<f4") for chunk in chunks]) if chunks else None
    return dataclasses.replace(doc, pieces=pieces, vectors=vectors)


def _chunk(docs: list[NewDocument], model: Embedder) -> tuple[list[NewDocument], Tally]:
    chunked, failed = [], Tally()
    for doc in docs:
        assert doc.incoming.text is not None  # only readable documents (no error) come here
        pieces = doc.pieces or chunk_text(
            doc.incoming.text, model.tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens
        )
        if pieces:
            chunked.append(dataclasses.replace(doc, pieces=pieces))
        else:
            failed += Tally.failure(doc.incoming.source, "the document holds no text")
    return chunked, failed


def _embed(ctx: JobContext, model: Embedder, docs: list[NewDocument], processed: int) -> list[NewDocument]:
    """The documents with their vectors: encoded here unless reused."""
    pending = [doc for doc in docs if doc.vectors is None]
    texts = [piece.text for doc in pending for piece in doc.pieces]
    parts = []
    with embedding_threads.ingest_embedding(ctx.job_id):
        for start in range(0, len(texts), CHUNKS_PER_ENCODE):
            embedding_threads.before_batch(ctx.job_id)  # every core while it is the only ingest
            parts.append(model.encode(texts[start : start + CHUNKS_PER_ENCODE]))
            ctx.checkpoint(processed)  # long documents: keep the lease alive
    vectors = np.vstack(parts) if parts else np.zeros((0, model.dimension), dtype="float32")
    embedded, position = [], 0
    for doc in docs:
        if doc.vectors is None:
            doc = dataclasses.replace(doc, vectors=vectors[position : position + len(doc.pieces)])
            position += len(doc.pieces)
        embedded.append(doc)
    return embedded


def _store(ctx: JobContext, docs: list[NewDocument]) -> Tally:
    """Write each new document with its chunks and vectors, replacing an
    older version under the same id; one transaction for the batch, one
    savepoint per document, so one the database refuses fails alone."""
    stored = Tally()
    with db.session_scope() as session:
        for doc in docs:
            try:
                with session.begin_nested():
                    _replace_document(session, ctx, doc)
            except IntegrityError:
                if session.scalar(select(Collection.id).where(Collection.id == ctx.collection_id)) is None:
                    raise JobFailure("not_found", "The collection was deleted while the job ran.") from None
                # A concurrent job stored a document under this id a moment ago.
                stored += Tally(skipped_duplicates=1)
                continue
            except DataError as exc:  # a value the checks before did not foresee
                reason = str(exc.orig).splitlines()[0] if exc.orig else "a value it cannot store"
                stored += Tally.failure(doc.incoming.source, f"the database refused the document ({reason})")
                continue
            stored += Tally.stored(doc.external_id, len(doc.pieces), doc.same_text_as)
        session.commit()
    return stored


def _replace_document(session: Session, ctx: JobContext, doc: NewDocument) -> None:
    assert doc.vectors is not None  # embedded or reused before storing
    older = session.scalars(
        select(Document).where(Document.collection_id == ctx.collection_id, Document.external_id == doc.external_id)
    ).first()
    if older is not None:  # same id, new content: a new version
        session.delete(older)
        session.flush()
    document = Document(
        tenant_id=ctx.tenant_id,
        collection_id=ctx.collection_id,
        external_id=doc.external_id,
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
        for ordinal, (piece, vector) in enumerate(zip(doc.pieces, doc.vectors))
    ]
    session.add(document)


def _batches(items: Iterable[IncomingDocument], size: int) -> Iterator[list[IncomingDocument]]:
    iterator = iter(items)
    while batch := list(islice(iterator, size)):
        yield batch
