"""Ingest and indexing against the real model and FAISS, in this process:
idempotent re-runs, content-hash dedupe, generation numbers, rebuilds, and
uploads staged in either staging area (UPLOAD_STAGING)."""

from __future__ import annotations

import io
import os
import shutil
import uuid
from datetime import timedelta

import pytest
from sqlalchemy import func, select, update

from app.extensions import settings
from app.models import Chunk, Collection, Document, Job, StagedUpload, utcnow
from app.services import jobs, staging
from app.services.collections import get_or_create_collection
from app.services.errors import PayloadTooLarge
from app.services.handlers import ingest
from app.services.handlers.indexing import index_for_search, index_store, sync_collection_index
from app.services.keys import SCOPES, Principal

DOCS = [
    {"id": "volcano", "text": "Volcanoes erupt molten rock called lava and ash."},
    {"id": "bees", "text": "Honey bees collect nectar from flowers to make honey."},
    {"id": "chess", "text": "In chess, the bishop moves diagonally across the board."},
    {"id": "tides", "text": "Ocean tides are caused by the gravitational pull of the moon."},
]


@pytest.fixture
def collection(runtime):
    name = f"c-{uuid.uuid4().hex[:8]}"
    with runtime.session_scope() as session:
        get_or_create_collection(session, "default", name)
        session.commit()
        return session.scalars(select(Collection).where(Collection.name == name)).one()


PRINCIPAL = Principal("default", "test-key", frozenset(SCOPES), "enterprise")


@pytest.fixture(params=["filesystem", "database"])
def staging_area(request, with_settings):
    """Each staging test runs against both backends."""
    with_settings(upload_staging=request.param)
    return request.param


def staged(runtime, job_id) -> set[str]:
    """What is staged for the job, in the database or in UPLOAD_DIR."""
    with runtime.session_scope() as session:
        rows = set(session.scalars(select(StagedUpload.name).where(StagedUpload.job_id == job_id)))
    folder = settings.upload_dir / job_id
    files = {p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()}
    return rows | files


def everything_staged(runtime) -> tuple[set, set]:
    with runtime.session_scope() as session:
        rows = set(session.execute(select(StagedUpload.job_id, StagedUpload.name)).all())
    return rows, set(settings.upload_dir.rglob("*")) if settings.upload_dir.is_dir() else set()


def submit(runtime, collection, documents) -> str:
    with runtime.session_scope() as session:
        return staging.submit_documents(session, PRINCIPAL, collection.name, documents).id


def counts(runtime, collection_id):
    with runtime.session_scope() as session:
        docs = session.scalar(select(func.count()).where(Document.collection_id == collection_id))
        chunks = session.scalar(select(func.count()).where(Chunk.collection_id == collection_id))
        generation = session.get(Collection, collection_id).generation
    return docs, chunks, generation


def job_result(runtime, job_id):
    with runtime.session_scope() as session:
        job = session.get(Job, job_id)
        return job.status, job.result


def top_document(runtime, collection, query: str) -> str:
    with runtime.session_scope() as session:
        job = jobs.submit(
            session,
            PRINCIPAL,
            "search",
            collection=collection,
            params={"query": query, "top_k": 3, "pipeline": "dense", "filters": {}},
        )
    assert jobs.run(job.id) == "succeeded"
    return job_result(runtime, job.id)[1]["hits"][0]["document_id"]


def test_ingest_stores_chunks_indexes_them_and_moves_the_generation(runtime, collection, staging_area):
    job_id = submit(runtime, collection, DOCS)
    assert staged(runtime, job_id) == {"documents.json"}
    assert jobs.run(job_id) == "succeeded"
    status, result = job_result(runtime, job_id)
    assert result["documents"] == 4 and result["chunks"] == 4 and result["skipped_duplicates"] == 0
    assert counts(runtime, collection.id) == (4, 4, 1)
    assert top_document(runtime, collection, "what makes lava?") == "volcano"
    # The staged upload is removed once the job finished.
    assert staged(runtime, job_id) == set() and not (settings.upload_dir / job_id).exists()


def test_uploaded_files_are_ingested_from_the_staging_area(runtime, collection, staging_area):
    uploads = [
        staging.Upload("knots.md", io.BytesIO(b"# Knots\nA bowline makes a fixed loop at the end of a rope.")),
        staging.Upload("Tea.TXT", io.BytesIO(b"Green tea is steamed or pan-fired soon after picking.")),
    ]
    with runtime.session_scope() as session:
        job_id = staging.submit_files(session, PRINCIPAL, collection.name, uploads, metadata={"team": "docs"}).id
    assert staged(runtime, job_id) == {"files/0.md", "files/1.txt"}
    assert jobs.run(job_id) == "succeeded"
    assert job_result(runtime, job_id)[1]["documents"] == 2
    assert top_document(runtime, collection, "how to tie a loop") == "knots.md"
    assert staged(runtime, job_id) == set()


def test_a_refused_upload_stages_nothing(runtime, collection, staging_area, with_settings):
    with_settings(upload_staging=staging_area, max_upload_mb=1)
    uploads = [
        staging.Upload("small.txt", io.BytesIO(b"A small file that fits.")),
        staging.Upload("big.txt", io.BytesIO(b"x" * (1024 * 1024 + 1))),
    ]
    before = everything_staged(runtime)
    with runtime.session_scope() as session, pytest.raises(PayloadTooLarge):
        staging.submit_files(session, PRINCIPAL, collection.name, uploads)
    assert everything_staged(runtime) == before
    with runtime.session_scope() as session:
        assert session.scalar(select(func.count()).where(Job.collection_id == collection.id)) == 0


def test_rerunning_a_crashed_ingest_duplicates_nothing(runtime, collection, staging_area):
    job_id = submit(runtime, collection, DOCS)
    # A worker claims the job and does all its work, then dies before
    # recording success: the job stays running under a lease that runs out.
    with runtime.session_scope() as session:
        job = jobs.claim(session, job_id, "doomed-worker", lease_seconds=60)
        ctx = jobs.JobContext(job.id, "doomed-worker", "default", "ingest", job.params, job.collection_id, 60)
    first = ingest.run_ingest(ctx)
    with runtime.session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    # The staged upload is still there: only a committed final status removes it.
    assert staged(runtime, job_id) == {"documents.json"}

    assert jobs.run(job_id) == "succeeded"
    status, second = job_result(runtime, job_id)
    assert (
        {k: second[k] for k in ("documents", "chunks", "skipped_duplicates")}
        == {k: first[k] for k in ("documents", "chunks", "skipped_duplicates")}
        == {"documents": 4, "chunks": 4, "skipped_duplicates": 0}
    )
    docs, chunks, generation = counts(runtime, collection.id)
    assert (docs, chunks) == (4, 4)
    assert generation == 1  # nothing new to index


def test_identical_content_is_skipped_and_adds_no_chunks(runtime, collection):
    assert jobs.run(submit(runtime, collection, DOCS)) == "succeeded"
    again = [{"text": d["text"]} for d in DOCS[:2]] + [{"text": DOCS[0]["text"]}]
    job_id = submit(runtime, collection, again)
    assert jobs.run(job_id) == "succeeded"
    result = job_result(runtime, job_id)[1]
    assert (result["documents"], result["chunks"], result["skipped_duplicates"]) == (0, 0, 3)
    assert counts(runtime, collection.id) == (4, 4, 1)


def test_new_content_under_an_existing_id_replaces_the_document(runtime, collection):
    assert jobs.run(submit(runtime, collection, DOCS)) == "succeeded"
    changed = [{"id": "bees", "text": "Bumblebees are large, hairy bees that nest in the ground."}]
    assert jobs.run(submit(runtime, collection, changed)) == "succeeded"
    docs, chunks, generation = counts(runtime, collection.id)
    assert (docs, chunks, generation) == (4, 4, 2)
    assert top_document(runtime, collection, "hairy ground-nesting bees") == "bees"


def test_replacing_the_newest_document_never_serves_its_old_vector(runtime, collection):
    """The newest chunk's id is the one SQLite would hand out again without
    AUTOINCREMENT; the index would then keep the old vector under it."""
    assert jobs.run(submit(runtime, collection, DOCS)) == "succeeded"
    with runtime.session_scope() as session:
        old_ids = set(session.scalars(select(Chunk.id).where(Chunk.collection_id == collection.id)))
    changed = [{"id": "tides", "text": "Sourdough bread rises slowly with wild yeast and flour."}]
    assert jobs.run(submit(runtime, collection, changed)) == "succeeded"
    with runtime.session_scope() as session:
        new_id = session.scalar(
            select(Chunk.id)
            .join(Document)
            .where(Document.external_id == "tides", Document.collection_id == collection.id)
        )
    assert new_id not in old_ids
    assert top_document(runtime, collection, "wild yeast sourdough") == "tides"
    assert top_document(runtime, collection, "the moon pulls the ocean") != "tides"


def test_a_lost_index_file_is_rebuilt_from_the_chunk_rows_under_its_generation(runtime, collection):
    """As on a second worker host without a shared INDEX_DIR: it rebuilds its
    own copy, and the generation every host serves stays where it was."""
    assert jobs.run(submit(runtime, collection, DOCS)) == "succeeded"
    before = top_document(runtime, collection, "the moon pulls the sea")
    shutil.rmtree(settings.index_dir / collection.id)
    index_store().evict(collection.id)  # as a fresh reader process has it
    index = index_for_search(collection.id)
    assert index.vectors.size == index.keywords.size == 4 and index.generation == 1
    assert counts(runtime, collection.id)[2] == 1
    assert top_document(runtime, collection, "the moon pulls the sea") == before == "tides"


def test_sync_without_changes_keeps_the_generation(runtime, collection):
    assert jobs.run(submit(runtime, collection, DOCS)) == "succeeded"
    assert sync_collection_index(collection.id) == 1
    assert sync_collection_index(collection.id, rebuild=True) == 2


def test_a_failed_ingest_removes_its_staged_upload(runtime, collection, staging_area):
    job_id = submit(runtime, collection, DOCS)
    with runtime.session_scope() as session:  # the collection goes away before the job runs
        session.delete(session.get(Collection, collection.id))
        session.commit()
    assert jobs.run(job_id) == "failed"
    assert staged(runtime, job_id) == set()


def test_a_queued_ingest_cancelled_removes_its_staged_upload_at_once(runtime, collection, staging_area):
    job_id = submit(runtime, collection, DOCS)
    with runtime.session_scope() as session:
        assert jobs.cancel_job(session, "default", job_id).status == "cancelled"
    assert staged(runtime, job_id) == set()


def test_the_sweep_removes_staged_rows_no_active_job_needs(runtime, collection, monkeypatch, with_settings):
    with_settings(upload_staging="database")
    finished, waiting = submit(runtime, collection, DOCS), submit(runtime, collection, DOCS)
    assert jobs.run(finished) == "succeeded"
    orphan = uuid.uuid4().hex  # its job was purged, say
    with runtime.session_scope() as session:
        for job_id in (finished, orphan):  # as if their removal had failed
            session.add(StagedUpload(job_id=job_id, name="documents.json", content=b"[]"))
        session.commit()

    with runtime.session_scope() as session:
        removed = staging.sweep_staged_uploads(session)
    assert {finished, orphan} <= set(removed) and waiting not in removed
    assert staged(runtime, finished) == staged(runtime, orphan) == set()
    assert staged(runtime, waiting) == {"documents.json"}


def test_the_sweep_removes_uploads_of_finished_jobs_and_old_orphans(runtime, collection, monkeypatch, with_settings):
    with_settings(upload_staging="filesystem")
    finished, waiting = submit(runtime, collection, DOCS), submit(runtime, collection, DOCS)
    assert jobs.run(finished) == "succeeded"
    (settings.upload_dir / finished).mkdir()  # as if its removal had failed
    old_orphan, new_orphan = settings.upload_dir / uuid.uuid4().hex, settings.upload_dir / uuid.uuid4().hex
    for orphan in (old_orphan, new_orphan):
        orphan.mkdir()
    two_days_ago = (utcnow() - timedelta(days=2)).timestamp()
    os.utime(old_orphan, (two_days_ago, two_days_ago))

    with runtime.session_scope() as session:
        removed = staging.sweep_staged_uploads(session)
    assert {finished, old_orphan.name} <= set(removed)
    assert not (settings.upload_dir / finished).exists() and not old_orphan.exists()
    # A queued job still needs its upload; a fresh folder may be a submit in progress.
    assert (settings.upload_dir / waiting).exists() and new_orphan.exists()


def test_past_the_index_budget_the_least_recent_collection_is_reloaded_from_its_files_not_rebuilt(
    runtime, monkeypatch, caplog
):
    made = []
    for _ in range(3):
        name = f"c-{uuid.uuid4().hex[:8]}"
        with runtime.session_scope() as session:
            made.append(get_or_create_collection(session, "default", name))
            session.commit()
            assert jobs.run(submit(runtime, made[-1], DOCS)) == "succeeded"
    store = index_store()
    sizes = [index_for_search(c.id).nbytes() for c in made]
    monkeypatch.setattr(store, "budget_bytes", sizes[0] + sizes[1] + sizes[2] // 2)  # two fit, not three
    files = [settings.index_dir / c.id / "gen-1" / "vectors.faiss" for c in made]
    written = [f.stat().st_mtime_ns for f in files]

    for query in ("the moon pulls the sea", "why does the ocean rise and fall"):
        for collection in made:  # round-robin: each search finds its collection evicted
            assert top_document(runtime, collection, query) == "tides"
            assert store.cached_keys()[-1] == collection.id  # it was loaded for this search
            assert store.cached_bytes <= store.budget_bytes
            assert made[(made.index(collection) + 1) % 3].id not in store.cached_keys()
    assert [f.stat().st_mtime_ns for f in files] == written  # read again, never rebuilt
    assert "missing" not in caplog.text
