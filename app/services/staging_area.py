"""Where an upload waits between the web process that received it and the
worker that ingests it (UPLOAD_STAGING).

An upload is a few named files per job. `database` keeps them in
`staged_uploads` rows written in the submit's own transaction, so web and
worker need share no disk (Heroku dynos); `filesystem` keeps them under
`UPLOAD_DIR/<job id>/`, for one host or a volume both mount. Either way they
are removed once the job has finished, and beat's sweep removes any that
removal missed.
"""

from __future__ import annotations

import shutil
from abc import ABC, abstractmethod
from datetime import datetime, timedelta
from pathlib import Path
from typing import IO

from sqlalchemy import delete, insert, select
from sqlalchemy.orm import Session

from app.extensions import db, settings
from app.models import Job, StagedUpload, utcnow
from app.services.jobs.kinds import ACTIVE

# A folder without a job younger than this may be a submit still writing it.
ORPHAN_AGE = timedelta(days=1)


class StagedUploadMissing(Exception):
    """The job's staged file is gone (removed, or never written here)."""


class StagingArea(ABC):
    @abstractmethod
    def put(self, session: Session, job_id: str, name: str, content: IO[bytes]) -> None:
        """Stage one file of the job; in the caller's transaction where the
        backend has one, so it is committed (or rolled back) with the job."""

    @abstractmethod
    def read(self, job_id: str, name: str) -> bytes:
        """A staged file's bytes; StagedUploadMissing when it is not there."""

    @abstractmethod
    def remove(self, job_id: str) -> None:
        """Remove everything staged for the job, in a transaction of its own."""

    @abstractmethod
    def sweep(self, session: Session, now: datetime | None = None) -> list[str]:
        """Remove the uploads no queued or running job will read; returns their job ids."""


class DirectoryStaging(StagingArea):
    def __init__(self, root: Path) -> None:
        self.root = root

    def put(self, session: Session, job_id: str, name: str, content: IO[bytes]) -> None:
        target = self.root / job_id / name
        target.parent.mkdir(parents=True, exist_ok=True)
        with target.open("wb") as out:
            shutil.copyfileobj(content, out)

    def read(self, job_id: str, name: str) -> bytes:
        try:
            return (self.root / job_id / name).read_bytes()
        except FileNotFoundError:
            raise StagedUploadMissing(f"{job_id}/{name}") from None

    def remove(self, job_id: str) -> None:
        shutil.rmtree(self.root / job_id, ignore_errors=True)

    def sweep(self, session: Session, now: datetime | None = None) -> list[str]:
        """Folders of jobs that ended without their worker removing them
        (cancelled while queued, say), and folders with no job that are
        older than ORPHAN_AGE (a submit that died half-way)."""
        if not self.root.is_dir():
            return []
        folders = {path.name: path for path in self.root.iterdir() if path.is_dir()}
        status_of = dict(session.execute(select(Job.id, Job.status).where(Job.id.in_(list(folders)))).all())
        cutoff = ((now or utcnow()) - ORPHAN_AGE).timestamp()
        removed = []
        for name, path in folders.items():
            status = status_of.get(name)
            if status in ACTIVE or (status is None and path.stat().st_mtime > cutoff):
                continue
            shutil.rmtree(path, ignore_errors=True)
            removed.append(name)
        return removed


class DatabaseStaging(StagingArea):
    def put(self, session: Session, job_id: str, name: str, content: IO[bytes]) -> None:
        # A Core insert: the session keeps no copy of the bytes until commit.
        session.execute(insert(StagedUpload).values(job_id=job_id, name=name, content=content.read()))

    def read(self, job_id: str, name: str) -> bytes:
        with db.reads_only(), db.session_scope() as session:
            content = session.scalar(
                select(StagedUpload.content).where(StagedUpload.job_id == job_id, StagedUpload.name == name)
            )
        if content is None:
            raise StagedUploadMissing(f"{job_id}/{name}")
        return bytes(content)

    def remove(self, job_id: str) -> None:
        with db.session_scope() as session:
            session.execute(delete(StagedUpload).where(StagedUpload.job_id == job_id))
            session.commit()

    def sweep(self, session: Session, now: datetime | None = None) -> list[str]:
        """Rows are committed with their job, so a row whose job is finished
        or gone is one no worker will read."""
        still_needed = select(Job.id).where(Job.status.in_(sorted(ACTIVE)))
        removed = session.scalars(
            delete(StagedUpload).where(StagedUpload.job_id.not_in(still_needed)).returning(StagedUpload.job_id)
        ).all()
        session.commit()
        return sorted(set(removed))


def staging_area() -> StagingArea:
    if settings.upload_staging == "database":
        return DatabaseStaging()
    return DirectoryStaging(settings.upload_dir)
