"""Ingest: stage uploads, then (in a worker) extract, chunk, embed and index.

Idempotent by construction: a document is keyed by its content hash within
its collection, so running the same job again — after a worker was killed,
say — writes no second copy of anything it already wrote.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.config import settings
from app.extensions import db
from app.models import Chunk, Collection, Document, Job
from app.search.chunking import chunk_text
from app.search.extract import SUPPORTED_EXTENSIONS, ExtractionError, extract_text, is_supported
from app.services import jobs
from app.services.collections import get_or_create_collection
from app.services.errors import JobFailure, PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from app.services.indexing import embedder, sync_collection_index
from app.services.jobs import JobContext
from app.services.keys import Principal

log = logging.getLogger(__name__)

DOCS_PER_CHECKPOINT = 16
CHUNKS_PER_ENCODE = 256
_COPY_BUFFER = 1024 * 1024


@dataclass
class Upload:
    """A file part as the API received it."""

    filename: str
    stream: BinaryIO


# --- submit (web process) -----------------------------------------------------


def submit_documents(
    session: Session, principal: Principal, collection_name: str, documents: list[dict[str, Any]]
) -> Job:
    collection = get_or_create_collection(session, principal.tenant_id, collection_name)
    jobs.admit(session, principal)
    session.commit()  # hold no database lock while the upload is written to disk
    job_id = uuid.uuid4().hex
    with _staging(job_id) as staging:
        (staging / "documents.json").write_text(json.dumps(documents))
        return _create_and_enqueue(
            session, job_id, principal, collection,
            sources=[{"kind": "documents", "path": "documents.json"}],
            total=len(documents),
        )


def submit_files(
    session: Session,
    principal: Principal,
    collection_name: str,
    uploads: list[Upload],
    metadata: dict[str, Any] | None = None,
) -> Job:
    for upload in uploads:  # refuse the whole request before writing anything
        if not upload.filename:
            raise ValidationFailed(
                "Every file part needs a filename.",
                errors=[{"field": "files", "message": "A file part has no filename."}],
            )
        if not is_supported(upload.filename):
            raise UnsupportedMediaType(
                f"{upload.filename}: unsupported file type. "
                f"Supported: {', '.join(SUPPORTED_EXTENSIONS)}."
            )
    collection = get_or_create_collection(session, principal.tenant_id, collection_name)
    jobs.admit(session, principal)  # refuse before streaming files to disk
    session.commit()  # hold no database lock while the upload is written to disk
    job_id = uuid.uuid4().hex
    with _staging(job_id) as staging:
        (staging / "files").mkdir()
        sources = []
        for position, upload in enumerate(uploads):
            relative = f"files/{position}{Path(upload.filename).suffix.lower()}"
            _save_limited(upload, staging / relative, settings.max_upload_bytes)
            sources.append(
                {
                    "kind": "file",
                    "path": relative,
                    "filename": Path(upload.filename).name,
                    "metadata": metadata or {},
                }
            )
        return _create_and_enqueue(
            session, job_id, principal, collection, sources=sources, total=len(sources)
        )


@contextmanager
def _staging(job_id: str) -> Iterator[Path]:
    """The job's folder in the upload store; removed again if the submit fails."""
    staging = _staging_dir(job_id)
    staging.mkdir(parents=True)
    try:
        yield staging
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


def _create_and_enqueue(
    session: Session,
    job_id: str,
    principal: Principal,
    collection: Collection,
    *,
    sources: list[dict[str, Any]],
    total: int,
) -> Job:
    job = jobs.create_job(
        session,
        job_id=job_id,
        tenant_id=principal.tenant_id,
        api_key_id=principal.key_id,
        job_type="ingest",
        params={"sources": sources},
        collection_id=collection.id,
        collection_name=collection.name,
        total=total,
    )
    jobs.enqueue(session, job)
    return job


def _save_limited(upload: Upload, target: Path, limit: int) -> None:
    written = 0
    with target.open("wb") as out:
        while block := upload.stream.read(_COPY_BUFFER):
            written += len(block)
            if written > limit:
                raise PayloadTooLarge(
                    f"{upload.filename} is larger than the {settings.max_upload_mb} MB limit per file."
                )
            out.write(block)


def _staging_dir(job_id: str) -> Path:
    return settings.upload_dir / job_id


def remove_staged_files(job_id: str) -> None:
    shutil.rmtree(_staging_dir(job_id), ignore_errors=True)


# --- run (worker) --------------------------------------------------------------


@dataclass
class IncomingDocument:
    source: str
    external_id: str | None
    text: str | None
    metadata: dict[str, Any]
    error: str | None = None


def _incoming(job_id: str, sources: list[dict[str, Any]]) -> Iterator[IncomingDocument]:
    staging = _staging_dir(job_id)
    for source in sources:
        path = staging / source["path"]
        if source["kind"] == "documents":
            for position, doc in enumerate(json.loads(path.read_text())):
                yield IncomingDocument(
                    source=doc.get("id") or f"documents[{position}]",
                    external_id=doc.get("id"),
                    text=doc["text"],
                    metadata=doc.get("metadata") or {},
                )
            continue
        filename = source["filename"]
        metadata = {"filename": filename, **(source.get("metadata") or {})}
        try:
            text = extract_text(filename, path.read_bytes())
        except ExtractionError as exc:
            yield IncomingDocument(filename, filename, None, metadata, error=str(exc))
        except FileNotFoundError:
            raise JobFailure(
                "upload_missing",
                "The uploaded files are no longer in the upload store; submit them again.",
            ) from None
        else:
            yield IncomingDocument(filename, filename, text, metadata)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def run_ingest(ctx: JobContext) -> dict[str, Any]:
    with db.session_scope() as session:
        collection = session.get(Collection, ctx.collection_id)
        if collection is None:
            raise JobFailure("not_found", "The collection was deleted before the job ran.")
    model = embedder()
    counts = {"documents": 0, "chunks": 0, "skipped_duplicates": 0}
    failed: list[dict[str, str]] = []
    processed = 0
    batch: list[IncomingDocument] = []
    seen: set[str] = set()  # content hashes this job has met, across batches

    def flush() -> None:
        nonlocal processed
        if batch:
            _ingest_batch(ctx, model, batch, counts, failed, seen, processed)
            processed += len(batch)
            batch.clear()
            ctx.checkpoint(processed)

    for incoming in _incoming(ctx.job_id, ctx.params["sources"]):
        if incoming.error is not None:
            failed.append({"source": incoming.source, "error": incoming.error})
            processed += 1
            continue
        batch.append(incoming)
        if len(batch) >= DOCS_PER_CHECKPOINT:
            flush()
    flush()

    generation = sync_collection_index(ctx.collection_id)
    remove_staged_files(ctx.job_id)
    return {**counts, "failed": failed, "index_generation": generation}


def _ingest_batch(
    ctx: JobContext,
    model,
    batch: list[IncomingDocument],
    counts: dict[str, int],
    failed: list[dict[str, str]],
    seen: set[str],
    processed: int,
) -> None:
    # Decide per document: already stored (by this job on an earlier attempt,
    # or by someone else), or new and to be chunked.
    pending: list[tuple[IncomingDocument, str, list]] = []
    with db.session_scope() as session:
        for doc in batch:
            digest = content_hash(doc.text)
            if digest in seen:
                counts["skipped_duplicates"] += 1
                continue
            seen.add(digest)
            existing = session.scalars(
                select(Document).where(
                    Document.collection_id == ctx.collection_id, Document.content_hash == digest
                )
            ).first()
            if existing is not None and existing.ingest_job_id == ctx.job_id:
                counts["documents"] += 1
                counts["chunks"] += existing.chunk_count
                continue
            if existing is not None:
                counts["skipped_duplicates"] += 1
                continue
            pieces = chunk_text(
                doc.text, model.tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens
            )
            if not pieces:
                failed.append({"source": doc.source, "error": "the document holds no text"})
                continue
            pending.append((doc, digest, pieces))

    texts = [piece.text for _, _, pieces in pending for piece in pieces]
    vectors = []
    for start in range(0, len(texts), CHUNKS_PER_ENCODE):
        vectors.extend(model.encode(texts[start : start + CHUNKS_PER_ENCODE]))
        ctx.checkpoint(processed)  # long documents: keep the lease alive

    with db.session_scope() as session:
        position = 0
        for doc, digest, pieces in pending:
            doc_vectors = vectors[position : position + len(pieces)]
            position += len(pieces)
            external_id = doc.external_id or f"doc_{digest[:24]}"
            try:
                with session.begin_nested():
                    replaced = session.scalars(
                        select(Document).where(
                            Document.collection_id == ctx.collection_id,
                            Document.external_id == external_id,
                        )
                    ).first()
                    if replaced is not None:  # same id, new content: a new version
                        session.delete(replaced)
                        session.flush()
                    document = Document(
                        tenant_id=ctx.tenant_id,
                        collection_id=ctx.collection_id,
                        external_id=external_id,
                        content_hash=digest,
                        meta=doc.metadata,
                        source=doc.source,
                        chunk_count=len(pieces),
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
                        for ordinal, (piece, vector) in enumerate(zip(pieces, doc_vectors))
                    ]
                    session.add(document)
            except IntegrityError:
                # A concurrent job stored the same content a moment ago.
                counts["skipped_duplicates"] += 1
                continue
            counts["documents"] += 1
            counts["chunks"] += len(pieces)
        session.commit()
