"""`quarry upload`: files and folders into a collection, in requests the
service accepts, then one progress bar over the ingest jobs."""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from quarry_client.clients import Quarry
from quarry_client.errors import PayloadTooLarge, RateLimited, UnsupportedMediaType
from quarry_client.files import files_under, is_supported
from quarry_client.models import Failure, Job

# One request holds at most this many files and bytes; a request the service
# still finds too large (413) is split in two and sent again.
FILES_PER_REQUEST = 50
BYTES_PER_REQUEST = 8 * 1024 * 1024


@dataclass
class UploadReport:
    jobs: list[Job] = field(default_factory=list)
    skipped: list[Path] = field(default_factory=list)
    refused: list[Failure] = field(default_factory=list)


def _batches(files: list[Path]) -> Iterator[list[Path]]:
    batch: list[Path] = []
    size = 0
    for file in files:
        file_size = file.stat().st_size
        if batch and (len(batch) == FILES_PER_REQUEST or size + file_size > BYTES_PER_REQUEST):
            yield batch
            batch, size = [], 0
        batch.append(file)
        size += file_size
    if batch:
        yield batch


def submit(client: Quarry, collection: str, paths: Iterable[Path], metadata: dict | None) -> UploadReport:
    """Send the files in batches; a batch the service refuses as a whole
    (413 too large, 415 a file whose content is not its type) is split until
    the files it refuses stand alone, and those are reported with its reason."""
    report = UploadReport()
    wanted = _unique_names(files_under(paths), report)
    pending = list(_batches(wanted))
    while pending:
        batch = pending.pop(0)
        try:
            report.jobs.append(client.documents.upload(collection, batch, metadata=metadata))
        except (PayloadTooLarge, UnsupportedMediaType) as exc:
            if len(batch) == 1:
                report.refused.append(_failure(batch[0].name, exc.detail))
            else:
                half = len(batch) // 2
                pending[:0] = [batch[:half], batch[half:]]
        except RateLimited:
            # The key's jobs in flight are at its quota: let those finish first.
            if not report.jobs or all(job.final for job in report.jobs):
                raise
            report.jobs = client.jobs.wait_all(report.jobs)
            pending.insert(0, batch)
    return report


def _unique_names(files: Iterable[Path], report: UploadReport) -> list[Path]:
    """The files to send: of the types the service reads (the others are
    skipped), and one per file name, since a document's id is its file name."""
    wanted: dict[str, Path] = {}
    for file in files:
        if not is_supported(file):
            report.skipped.append(file)
        elif file.name in wanted:
            report.refused.append(
                _failure(str(file), f"another file of this upload is named {file.name} too ({wanted[file.name]})")
            )
        else:
            wanted[file.name] = file
    return list(wanted.values())


def _failure(source: str, error: str) -> Failure:
    return Failure.from_json({"source": source, "error": error})


def wait_with_progress(client: Quarry, jobs: list[Job], timeout: float, show: bool) -> list[Job]:
    """The final jobs, with a bar over the files they have processed."""
    if not show:
        return client.jobs.wait_all(jobs, timeout=timeout)
    columns = (TextColumn("ingesting"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
    with Progress(*columns, transient=True) as bar:
        task = bar.add_task("ingest", total=None)

        def show_progress(current: Sequence[Job]) -> None:
            total = sum(job.progress.total for job in current)
            bar.update(task, total=total or None, completed=sum(job.progress.processed for job in current))

        show_progress(jobs)
        return client.jobs.wait_all(jobs, timeout=timeout, on_update=show_progress)
