"""Searches waiting together run as one micro-batch (real model, FAISS and
BM25, in this process): each job gets exactly the result it would get alone,
a failure stays with its own jobs, the batched jobs' own messages are
dropped, and a batch whose worker dies loses none of its jobs."""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

import psycopg
import pytest
from sqlalchemy import make_url, select, update

from app.models import Collection, Job, utcnow
from app.services import jobs, staging
from app.services.handlers.search import run_searches
from app.services.jobs import batches
from app.services.keys import SCOPES, Principal

PRINCIPAL = Principal("default", "batch-key", frozenset(SCOPES), "enterprise")
NATURE = [
    {"id": "volcano", "text": "Volcanoes erupt molten rock called lava and ash.", "metadata": {"topic": "earth"}},
    {"id": "bees", "text": "Honey bees collect nectar from flowers to make honey.", "metadata": {"topic": "life"}},
    {"id": "tides", "text": "Ocean tides follow the gravitational pull of the moon.", "metadata": {"topic": "sea"}},
    {"id": "reef", "text": "Coral reefs are built by tiny animals in warm seas.", "metadata": {"topic": "sea"}},
]
GAMES = [
    {"id": "chess", "text": "In chess, the bishop moves diagonally across the board."},
    {"id": "go", "text": "Go is played with black and white stones on a grid."},
    {"id": "lava-game", "text": "The floor is lava: children jump between the sofas."},
]


def _ingest(runtime, documents) -> str:
    name = f"batch-{uuid.uuid4().hex[:8]}"
    with runtime.session_scope() as session:
        job_id = staging.submit_documents(session, PRINCIPAL, name, documents).id
    assert jobs.run(job_id) == "succeeded"
    return name


@pytest.fixture(scope="module")
def corpora(runtime):
    return {"nature": _ingest(runtime, NATURE), "games": _ingest(runtime, GAMES)}


@pytest.fixture(autouse=True)
def no_other_waiting_searches(runtime):
    """Other modules' tests may leave search jobs queued; a batch would take them."""
    with runtime.session_scope() as session:
        for job_id in session.scalars(select(Job.id).where(Job.status == "queued", Job.type == "search")).all():
            jobs.transition(session, job_id, jobs.JobStatus.CANCELLED)
        session.commit()


@pytest.fixture
def no_cache(with_settings):
    """Every search computed: the test compares computations."""
    with_settings(search_cache_ttl_seconds=0)


def _search(query, pipeline="hybrid", top_k=3, **filters):
    return {"query": query, "pipeline": pipeline, "top_k": top_k, "filters": filters}


MIXED = [
    ("nature", _search("lava from volcanoes", "dense")),
    ("nature", _search("honey", "keyword", top_k=2)),
    ("nature", _search("the moon and the sea", topic="sea")),
    ("games", _search("a bishop on the board")),
    ("games", _search("lava from volcanoes", "dense")),
    ("nature", _search("lava from volcanoes", "dense")),  # identical to the first
]


def _submit(runtime, corpora, searches) -> list[str]:
    ids = []
    with runtime.session_scope() as session:
        for corpus, params in searches:
            collection = session.scalars(select(Collection).where(Collection.name == corpora[corpus])).one()
            ids.append(jobs.submit(session, PRINCIPAL, "search", collection=collection, params=params).id)
    return ids


def _jobs(runtime, ids) -> list[Job]:
    with runtime.session_scope() as session:
        return [session.get(Job, job_id) for job_id in ids]


def _hits(job: Job) -> list[tuple[str, int]]:
    return [(hit["document_id"], hit["chunk_id"]) for hit in job.result["hits"]]


def test_a_batch_gives_every_job_the_hits_it_gets_alone(runtime, corpora, no_cache):
    alone = _submit(runtime, corpora, MIXED)
    for job_id in alone:
        assert jobs.run(job_id) == "succeeded"
    together = _submit(runtime, corpora, MIXED)
    assert batches.run_batch(together[0], run_searches, max_jobs=32, wait_ms=0) == "succeeded"
    finished = _jobs(runtime, together)
    assert [job.status for job in finished] == ["succeeded"] * len(MIXED)
    assert [_hits(job) for job in finished] == [_hits(job) for job in _jobs(runtime, alone)]
    assert _hits(finished[0])[0][0] == "volcano" and _hits(finished[4])[0][0] == "lava-game"
    assert {hit["metadata"]["topic"] for hit in finished[2].result["hits"]} == {"sea"}
    assert _hits(finished[1])[0][0] == "bees"
    # The identical search was computed once, by the first job.
    assert (finished[0].result["cached"], finished[5].result["cached"]) == (False, True)
    assert all(job.attempts == 1 for job in finished)


def test_a_batch_takes_at_most_its_size_and_leaves_the_rest_queued(runtime, corpora):
    ids = _submit(runtime, corpora, [("nature", _search(f"query {i}")) for i in range(5)])
    assert batches.run_batch(ids[0], run_searches, max_jobs=3, wait_ms=0) == "succeeded"
    assert sorted(job.status for job in _jobs(runtime, ids)) == ["queued"] * 2 + ["succeeded"] * 3


def test_the_message_of_a_job_a_batch_took_is_dropped(runtime, corpora):
    ids = _submit(runtime, corpora, [("nature", _search("bees")), ("nature", _search("reefs"))])
    seen_busy = []

    def handler(contexts):
        assert set(ids) <= {ctx.job_id for ctx in contexts}
        with runtime.session_scope() as session, pytest.raises(jobs.JobBusy) as busy:
            jobs.claim(session, ids[1], "another-worker", 60)
        seen_busy.append(busy.value.batched)
        return run_searches(contexts)

    assert batches.run_batch(ids[0], handler, max_jobs=32, wait_ms=0) == "succeeded"
    assert seen_busy == [True]
    assert jobs.run_job(ids[1], "search") == "skipped"  # its message, arriving late
    assert [job.status for job in _jobs(runtime, ids)] == ["succeeded", "succeeded"]


def test_the_message_of_a_job_a_batch_took_is_dropped_while_another_writer_holds_the_database(
    runtime, corpora, test_settings
):
    """Under load most messages of searches are of jobs a batch took: they
    are dropped after a read, never waiting behind another process's write."""
    ids = _submit(runtime, corpora, [("nature", _search("bees")), ("nature", _search("reefs"))])
    dropped: list[str] = []

    def handler(contexts):
        with writer_holding(test_settings.normalized_database_url(), ids[1]):
            late_message = threading.Thread(target=lambda: dropped.append(jobs.run_job(ids[1], "search")))
            late_message.start()
            late_message.join(10)  # a write would wait out the other writer (30 s on SQLite)
        assert dropped == ["skipped"]
        return run_searches(contexts)

    assert batches.run_batch(ids[0], handler, max_jobs=32, wait_ms=0) == "succeeded"
    assert [job.status for job in _jobs(runtime, ids)] == ["succeeded", "succeeded"]


@contextmanager
def writer_holding(database_url: str, job_id: str) -> Iterator[None]:
    """Another process's open write: SQLite's write lock, or PostgreSQL's lock on the job's row."""
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        connection = sqlite3.connect(url.database, isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
    else:
        connection = psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False))
        connection.execute("SELECT 1 FROM jobs WHERE id = %s FOR UPDATE", (job_id,))
    try:
        yield
    finally:
        connection.rollback()
        connection.close()


def test_a_search_that_crashes_fails_only_the_jobs_that_share_it(runtime, corpora):
    ids = _submit(runtime, corpora, [("nature", {"query": "bees"}), ("nature", _search("bees"))])
    assert batches.run_batch(ids[1], run_searches, max_jobs=32, wait_ms=0) == "succeeded"
    crashed, succeeded = _jobs(runtime, ids)  # the first lacks its pipeline and top_k
    assert (crashed.status, crashed.error_code) == ("failed", "internal_error")
    assert _hits(succeeded)[0][0] == "bees"


def test_a_deleted_collection_fails_only_its_own_jobs(runtime, corpora):
    doomed = {"doomed": _ingest(runtime, GAMES[:1]), **corpora}
    ids = _submit(runtime, doomed, [("doomed", _search("chess")), ("nature", _search("bees"))])
    with runtime.session_scope() as session:
        session.delete(session.scalars(select(Collection).where(Collection.name == doomed["doomed"])).one())
        session.commit()
    assert batches.run_batch(ids[0], run_searches, max_jobs=32, wait_ms=0) == "failed"
    failed, succeeded = _jobs(runtime, ids)
    assert (failed.status, failed.error_code) == ("failed", "not_found")
    assert succeeded.status == "succeeded" and _hits(succeeded)[0][0] == "bees"


def test_a_batch_whose_worker_dies_loses_none_of_its_jobs(runtime, corpora):
    ids = _submit(runtime, corpora, [("nature", _search(q)) for q in ("lava", "honey", "tides")])

    def dies(contexts):
        raise SystemExit("the pool process is killed mid-batch")

    with pytest.raises(SystemExit):
        batches.run_batch(ids[0], dies, max_jobs=32, wait_ms=0)
    assert [job.status for job in _jobs(runtime, ids)] == ["running"] * 3
    with runtime.session_scope() as session:  # the dead worker's leases run out
        session.execute(update(Job).where(Job.id.in_(ids)).values(lease_expires_at=utcnow() - timedelta(seconds=1)))
        session.commit()
    for job_id in ids:  # each job's message (redelivered or re-sent by recovery)
        assert jobs.run_job(job_id, "search") in ("succeeded", "skipped")
    finished = _jobs(runtime, ids)
    assert [job.status for job in finished] == ["succeeded"] * 3
    assert [job.attempts for job in finished] == [2, 2, 2]
