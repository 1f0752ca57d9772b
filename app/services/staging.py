"""Upload staging (web side): take documents or files from a request, stage
them where the ingest worker will read them, and submit the ingest job.

Staged uploads live in `UPLOAD_DIR/<job id>/`; the worker reads them through
`staged_path()` and removes them when the job is done.
"""

from __future__ import annotations

import json
import shutil
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Iterator

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.config import settings
from app.models import Collection, Job, utcnow
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

_COPY_BUFFER = 1024 * 1024


@dataclass
class Upload:
    """A file part as the API received it."""

    filename: str
    stream: BinaryIO


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
    with _staging(job_id) as staging:
        (staging / "documents.json").write_text(json.dumps(documents))
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
    collection = _collection_for_upload(session, principal, collection_name)
    job_id = uuid.uuid4().hex
    with _staging(job_id) as staging:
        (staging / "files").mkdir()
        sources = []
        for position, upload in enumerate(uploads):
            relative = f"files/{position}{Path(upload.filename).suffix.lower()}"
            _save_limited(upload, staging / relative, settings.max_upload_bytes)
            _check_content(upload.filename, staging / relative)
            sources.append(
                {
                    "kind": "file",
                    "path": relative,
                    "filename": Path(upload.filename).name,
                    "metadata": metadata or {},
                }
            )
        return _submit(session, principal, collection, job_id, sources, callback, len(sources), idempotency)


def staged_path(job_id: str, relative: str) -> Path:
    return _staging_dir(job_id) / relative


def remove_staged_files(job_id: str) -> None:
    shutil.rmtree(_staging_dir(job_id), ignore_errors=True)


ORPHAN_AGE = timedelta(days=1)


def sweep_staged_uploads(session: Session, *, now: datetime | None = None) -> list[str]:
    """Beat's clean-up: remove the uploads of jobs that ended without their
    worker removing them (cancelled while queued, say), and folders with no
    job that are older than a day (a submit that died half-way). A younger
    folder without a job may be a submit still in progress."""
    root = settings.upload_dir
    if not root.is_dir():
        return []
    folders = {path.name: path for path in root.iterdir() if path.is_dir()}
    status_of = dict(session.execute(select(Job.id, Job.status).where(Job.id.in_(list(folders)))).all())
    cutoff = ((now or utcnow()) - ORPHAN_AGE).timestamp()
    removed = []
    for name, path in folders.items():
        status = status_of.get(name)
        if status in jobs.ACTIVE or (status is None and path.stat().st_mtime > cutoff):
            continue
        shutil.rmtree(path, ignore_errors=True)
        removed.append(name)
    return removed


def _collection_for_upload(session: Session, principal: Principal, name: str) -> Collection:
    collection = get_or_create_collection(session, principal.tenant_id, name)
    session.commit()  # hold no database lock while the upload is written to disk
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
        session, principal, "ingest", params=params, collection=collection, total=total, job_id=job_id,
        idempotency=idempotency,
    )
    if job.id != job_id:  # a repeated request: the first one's upload is the one ingested
        remove_staged_files(job_id)
    return job


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


def _check_content(filename: str, path: Path) -> None:
    """The type is decided by content as well as by name: a PDF called .txt,
    or a text called .pdf, is refused before any job exists."""
    with path.open("rb") as staged:
        head = staged.read(SNIFF_BYTES)
    try:
        check_type(filename, head)
    except UnsupportedType as exc:
        raise UnsupportedMediaType(f"{filename}: {exc}") from None


def _staging_dir(job_id: str) -> Path:
    return settings.upload_dir / job_id
