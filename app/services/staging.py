"""Upload staging (web side): take documents or files from a request, stage
them where the ingest worker will read them, and submit the ingest job.

Staged uploads live in the staging area (app/services/staging_area.py: the
database, or `UPLOAD_DIR/<job id>/`); the worker reads them from there and
removes them when the job is done.
"""

from __future__ import annotations

import io
import json
import tempfile
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import IO, Any

from sqlalchemy.orm import Session

from app.extensions import settings
from app.models import Collection, Job
from app.search.extract import (
    SNIFF_BYTES,
    SUPPORTED_EXTENSIONS,
    UnsupportedType,
    check_type,
    is_supported,
)
from app.services import jobs
from app.services.collections import get_or_create_collection
from app.services.errors import PayloadTooLarge, UnsupportedMediaType, ValidationFailed
from app.services.jobs.idempotency import Idempotency
from app.services.keys import Principal
from app.services.staging_area import staging_area
from app.services.storable import clean_filename

_COPY_BUFFER = 1024 * 1024


@dataclass
class Upload:
    """A file part as the API received it."""

    filename: str
    stream: IO[bytes]


def submit_documents(
    session: Session,
    principal: Principal,
    collection_name: str,
    documents: list[dict[str, Any]],
    callback: dict[str, Any] | None = None,
    idempotency: Idempotency | None = None,
) -> Job:
    collection = _collection_for_upload(session, principal, collection_name)
    job_id = uuid.uuid4().hex
    with _staging(session, job_id) as stage:
        stage("documents.json", io.BytesIO(json.dumps(documents).encode()))
        sources = [{"kind": "documents", "path": "documents.json"}]
        return _submit(session, principal, collection, job_id, sources, callback, len(documents), idempotency)


def submit_files(
    session: Session,
    principal: Principal,
    collection_name: str,
    uploads: list[Upload],
    metadata: dict[str, Any] | None = None,
    callback: dict[str, Any] | None = None,
    idempotency: Idempotency | None = None,
) -> Job:
    # The name becomes the document's id and metadata: only its last part, storable.
    uploads = [Upload(clean_filename(upload.filename), upload.stream) for upload in uploads]
    for upload in uploads:  # refuse the whole request before writing anything
        if not upload.filename:
            raise ValidationFailed(
                "Every file part needs a filename.",
                errors=[{"field": "files", "message": "A file part has no filename."}],
            )
        if not is_supported(upload.filename):
            raise UnsupportedMediaType(
                f"{upload.filename}: unsupported file type. Supported: {', '.join(SUPPORTED_EXTENSIONS)}."
            )
    collection = _collection_for_upload(session, principal, collection_name)
    job_id = uuid.uuid4().hex
    with ExitStack() as received:
        # Every file is read and checked before any is staged: a refused
        # request stages nothing, and no database lock is held while reading.
        files = [received.enter_context(_received(upload)) for upload in uploads]
        with _staging(session, job_id) as stage:
            sources = []
            for position, (upload, file) in enumerate(zip(uploads, files)):
                relative = f"files/{position}{Path(upload.filename).suffix.lower()}"
                stage(relative, file)
                sources.append(
                    {
                        "kind": "file",
                        "path": relative,
                        "filename": upload.filename,
                        "metadata": metadata or {},
                    }
                )
            return _submit(session, principal, collection, job_id, sources, callback, len(sources), idempotency)


def remove_staged_files(job_id: str) -> None:
    """The ingest kind's on_finish: the job's final status is committed."""
    staging_area().remove(job_id)


def sweep_staged_uploads(session: Session, *, now: datetime | None = None) -> list[str]:
    """Beat's clean-up of uploads no queued or running job will read."""
    return staging_area().sweep(session, now)


def _collection_for_upload(session: Session, principal: Principal, name: str) -> Collection:
    collection = get_or_create_collection(session, principal.tenant_id, name)
    session.commit()  # hold no database lock while the upload is read
    return collection


def _submit(
    session: Session,
    principal: Principal,
    collection: Collection,
    job_id: str,
    sources: list[dict[str, Any]],
    callback: dict[str, Any] | None,
    total: int,
    idempotency: Idempotency | None,
) -> Job:
    params = {"sources": sources, **(callback or {})}
    job = jobs.submit(
        session,
        principal,
        "ingest",
        params=params,
        collection=collection,
        total=total,
        job_id=job_id,
        idempotency=idempotency,
    )
    if job.id != job_id:  # a repeated request: the first one's upload is the one ingested
        _discard(session, job_id)
    return job


@contextmanager
def _staging(session: Session, job_id: str) -> Iterator[Callable[[str, IO[bytes]], None]]:
    """A function that stages one file of the job; what it staged is
    discarded again if the submit fails."""
    area = staging_area()
    try:
        yield lambda name, content: area.put(session, job_id, name, content)
    except BaseException:
        _discard(session, job_id)
        raise


def _discard(session: Session, job_id: str) -> None:
    # Rows staged in the database go with the transaction; on SQLite, the
    # rollback also frees the write lock before remove() takes its own.
    session.rollback()
    staging_area().remove(job_id)


@contextmanager
def _received(upload: Upload) -> Iterator[IO[bytes]]:
    """The upload's bytes in a local temporary file, once they are known to
    be within the size limit and of the type their name says."""
    with tempfile.SpooledTemporaryFile(max_size=_COPY_BUFFER) as file:
        _save_limited(upload, file, settings.max_upload_bytes)
        file.seek(0)
        _check_content(upload.filename, file.read(SNIFF_BYTES))
        file.seek(0)
        yield file


def _save_limited(upload: Upload, out: IO[bytes], limit: int) -> None:
    written = 0
    while block := upload.stream.read(_COPY_BUFFER):
        written += len(block)
        if written > limit:
            raise PayloadTooLarge(f"{upload.filename} is larger than the {settings.max_upload_mb} MB limit per file.")
        out.write(block)


def _check_content(filename: str, head: bytes) -> None:
    """The type is decided by content as well as by name: a PDF called .txt,
    or a text called .pdf, is refused before any job exists."""
    try:
        check_type(filename, head)
    except UnsupportedType as exc:
        raise UnsupportedMediaType(f"{filename}: {exc}") from None
