"""Commands over the data: collections, documents, upload, search, jobs."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

import click
from rich.markup import escape

from quarry_client.cli import output
from quarry_client.cli.base import EXIT_FAILED, command, main
from quarry_client.cli.upload import submit, wait_with_progress
from quarry_client.clients import Quarry
from quarry_client.models import Collection, Job

LIST_LIMIT = click.option("--limit", default=50, show_default=True, help="Show at most this many.")
TIMEOUT = click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait at most.")


def _finish(client: Quarry, job: Job, wait: bool, timeout: float, as_json: bool) -> None:
    """Print a submitted job, or wait for it and print the final one."""
    if wait:
        job = client.jobs.wait(job, timeout=timeout)
    if as_json:
        output.emit_json(job)
    else:
        _show_job(job)


def _show_job(job: Job) -> None:
    output.fields(
        job, ["id", "type", "status", "collection", "progress", "result", "error", "created_at", "finished_at"]
    )


# --- collections ----------------------------------------------------------


@main.group()
def collections() -> None:
    """Create, list, show and delete collections."""


def _show_collection(collection: Collection) -> None:
    output.fields(collection, ["name", "description", "index_type", "documents", "chunks", "generation", "created_at"])


@command(collections, "create")
@click.argument("name")
@click.option("--description")
@click.option("--index-type", type=click.Choice(["flat", "hnsw"]))
def collections_create(client: Quarry, name: str, description: str | None, index_type: str | None, as_json: bool):
    made = client.collections.create(name, description=description, index_type=index_type)
    output.emit_json(made) if as_json else _show_collection(made)


@command(collections, "list")
@LIST_LIMIT
def collections_list(client: Quarry, limit: int, as_json: bool) -> None:
    found = list(itertools.islice(client.collections.list(), limit))
    if as_json:
        return output.emit_json(found)
    output.table(
        [(c.name, c.documents, c.chunks, c.index_type) for c in found], ["name", "documents", "chunks", "index"]
    )


@command(collections, "show")
@click.argument("name")
def collections_show(client: Quarry, name: str, as_json: bool) -> None:
    found = client.collections.get(name)
    output.emit_json(found) if as_json else _show_collection(found)


@command(collections, "delete")
@click.argument("name")
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait until it is gone.")
@TIMEOUT
def collections_delete(client: Quarry, name: str, wait: bool, timeout: float, as_json: bool) -> None:
    _finish(client, client.collections.delete(name), wait, timeout, as_json)


# --- documents ------------------------------------------------------------------


@main.group()
def docs() -> None:
    """List, show and delete a collection's documents."""


@command(docs, "list")
@click.argument("collection")
@LIST_LIMIT
def docs_list(client: Quarry, collection: str, limit: int, as_json: bool) -> None:
    found = list(itertools.islice(client.documents.list(collection), limit))
    if as_json:
        return output.emit_json(found)
    output.table(
        [(d.id, d.chunks, d.status, output.when(d.created_at)) for d in found], ["id", "chunks", "status", "created"]
    )


@command(docs, "show")
@click.argument("collection")
@click.argument("document_id")
def docs_show(client: Quarry, collection: str, document_id: str, as_json: bool) -> None:
    found = client.documents.get(collection, document_id)
    if as_json:
        return output.emit_json(found)
    output.fields(found, ["id", "status", "chunks", "metadata", "content_hash", "source", "created_at"])


@command(docs, "delete")
@click.argument("collection")
@click.argument("document_id")
@click.option("--wait/--no-wait", default=True, show_default=True)
@TIMEOUT
def docs_delete(client: Quarry, collection: str, document_id: str, wait: bool, timeout: float, as_json: bool):
    _finish(client, client.documents.delete(collection, document_id), wait, timeout, as_json)


# --- upload and search --------------------------------------------------------------


@command(main, "upload")
@click.argument("collection")
@click.argument("paths", nargs=-1, required=True, type=click.Path(exists=True, path_type=Path))
@click.option("--metadata", help='A JSON object added to every file\'s metadata, e.g. \'{"team": "docs"}\'.')
@click.option("--wait/--no-wait", default=True, show_default=True, help="Wait for the ingest, with a progress bar.")
@TIMEOUT
def upload(
    client: Quarry,
    collection: str,
    paths: tuple[Path, ...],
    metadata: str | None,
    wait: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Upload files and folders (recursively) into COLLECTION, creating it if needed.

    Files of types the service does not read are skipped with a note; the
    files it could not ingest are listed at the end (exit status 1)."""
    try:
        extra = json.loads(metadata) if metadata else None
    except ValueError as exc:
        raise click.BadParameter(f"not JSON: {exc}", param_hint="--metadata") from exc
    if extra is not None and not isinstance(extra, dict):
        raise click.BadParameter('a JSON object, e.g. \'{"team": "docs"}\'', param_hint="--metadata")
    report = submit(client, collection, paths, extra)
    jobs = wait_with_progress(client, report.jobs, timeout, show=not as_json) if wait else report.jobs
    failed = report.refused + [f for job in jobs if job.status == "succeeded" and job.result for f in job.result.failed]
    if as_json:
        output.emit_json({"jobs": jobs, "skipped": [str(p) for p in report.skipped], "failed": failed})
    else:
        _report_upload(jobs, report.skipped, failed, wait)
    if failed or any(job.status in ("failed", "cancelled") for job in jobs):
        raise SystemExit(EXIT_FAILED)


def _report_upload(jobs: list[Job], skipped: list[Path], failed: list, waited: bool) -> None:
    for path in skipped:
        output.note(f"skipped {escape(str(path))}: not a type the service reads")
    if not waited:
        output.say(f"Submitted {len(jobs)} ingest job(s): {', '.join(job.id for job in jobs)}")
        return
    documents = sum(job.result.documents for job in jobs if job.status == "succeeded" and job.result)
    chunks = sum(job.result.chunks for job in jobs if job.status == "succeeded" and job.result)
    duplicates = sum(job.result.skipped_duplicates for job in jobs if job.status == "succeeded" and job.result)
    output.out.print(
        f"Ingested {documents} document(s), {chunks} chunk(s); {duplicates} unchanged duplicate(s) skipped."
    )
    for job in jobs:
        if job.status != "succeeded":
            output.note(f"[red]job {job.id} {job.status}[/red]: {escape((job.error or {}).get('message', ''))}")
    if failed:
        output.table([(f.source, f.error) for f in failed], ["failed", "why"])


@command(main, "search")
@click.argument("collection")
@click.argument("query")
@click.option("--pipeline", type=click.Choice(["dense", "keyword", "hybrid", "rerank"]))
@click.option("--top-k", type=click.IntRange(1, 100))
@click.option(
    "--filter",
    "filters",
    multiple=True,
    metavar="KEY=VALUE",
    help="Metadata filter; repeat a key for any of several values.",
)
@click.option("--collapse", is_flag=True, help="One hit per document.")
@TIMEOUT
def search(
    client: Quarry,
    collection: str,
    query: str,
    pipeline: str | None,
    top_k: int | None,
    filters: tuple[str, ...],
    collapse: bool,
    timeout: float,
    as_json: bool,
) -> None:
    """Search COLLECTION and print the hits, best first."""
    job = client.search(
        collection,
        query,
        pipeline=pipeline,
        top_k=top_k,
        filters=_filters(filters) or None,
        collapse="document" if collapse else None,
    ).wait(timeout)
    if as_json:
        return output.emit_json(job.result)
    hits = job.result.hits
    rows = [(rank, f"{hit.score:.3f}", hit.document_id, output.shorten(hit.text)) for rank, hit in enumerate(hits, 1)]
    output.table(rows, ["#", "score", "document", "text"], title=f"{len(hits)} hit(s), {job.result.pipeline}")


def _filters(pairs: tuple[str, ...]) -> dict[str, list[Any]]:
    """KEY=VALUE pairs as filters; a value that reads as a JSON number,
    true, false or null is that (metadata keeps types: "2024" is not 2024),
    and a quoted one ('year="2024"') stays a string."""
    chosen: dict[str, list[Any]] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--filter")
        chosen.setdefault(key, []).append(_scalar(value))
    return chosen


def _scalar(text: str) -> Any:
    try:
        value = json.loads(text)
    except ValueError:
        return text
    return value if value is None or isinstance(value, bool | int | float | str) else text


# --- jobs -----------------------------------------------------------------------


@main.group()
def jobs() -> None:
    """List, show, wait for and cancel jobs."""


@command(jobs, "list")
@click.option("--status", type=click.Choice(["queued", "running", "succeeded", "failed", "cancelled"]))
@click.option("--type", "job_type")
@click.option("--collection")
@LIST_LIMIT
def jobs_list(
    client: Quarry, status: str | None, job_type: str | None, collection: str | None, limit: int, as_json: bool
):
    found = list(itertools.islice(client.jobs.list(status=status, type=job_type, collection=collection), limit))
    if as_json:
        return output.emit_json(found)
    rows = [
        (j.id, j.type, j.status, j.collection, f"{j.progress.percent:g}%", output.when(j.created_at)) for j in found
    ]
    output.table(rows, ["id", "type", "status", "collection", "progress", "created"])


@command(jobs, "show")
@click.argument("job_id")
def jobs_show(client: Quarry, job_id: str, as_json: bool) -> None:
    _finish(client, client.jobs.get(job_id), False, 0, as_json)


@command(jobs, "wait")
@click.argument("job_id")
@TIMEOUT
def jobs_wait(client: Quarry, job_id: str, timeout: float, as_json: bool) -> None:
    """Wait until the job is final (exit 1 if it failed or was cancelled)."""
    _finish(client, client.jobs.get(job_id), True, timeout, as_json)


@command(jobs, "cancel")
@click.argument("job_id")
def jobs_cancel(client: Quarry, job_id: str, as_json: bool) -> None:
    _finish(client, client.jobs.cancel(job_id), False, 0, as_json)
