"""A job's JSON passes through its type's schema on the way out (and is
documented by it): nothing may be lost or changed there."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from app.api.job_schemas import JOB_SCHEMAS, JobSchema
from app.models import Job
from app.services.jobs import JOB_TYPES, job_to_dict

HIT = {"document_id": "knots.md", "chunk_id": "2", "score": 0.61, "text": "A bowline.", "metadata": {"team": "docs"}}
CITATION = {"text": "A bowline.", "document_id": "knots.md", "chunk_id": "2", "score": 0.7}
ANSWER = {"text": "A bowline.", "citations": [CITATION]}
# Every field each handler writes, optional ones included.
RESULTS = {
    "ingest": {
        "documents": 1,
        "chunks": 2,
        "skipped_duplicates": 1,
        "failed": [{"source": "scan.pdf", "error": "the document holds no text"}],
        "index_generation": 3,
        "same_text": [{"id": "owl-copy", "same_text_as": "owl"}],
    },
    "search": {
        "hits": [HIT],
        "answer": ANSWER,
        "pipeline": "hybrid",
        "took_ms": 12.5,
        "index_generation": 3,
        "cached": True,
    },
    "search_batch": {
        "results": [{"query": "loop", "hits": [HIT], "answer": None}, {"query": "lava", "hits": []}],
        "pipeline": "dense",
        "took_ms": 20.0,
        "index_generation": 3,
    },
    "delete_document": {"document_id": "knots.md", "deleted": True, "chunks": 2, "index_generation": None},
    "delete_collection": {"deleted": True, "documents": 1, "chunks": 2},
}


def finished_job(job_type: str, result: dict | None, **fields) -> Job:
    moment = datetime(2026, 1, 5, 10, 0, tzinfo=UTC)
    values = dict(
        id="j1",
        type=job_type,
        status="succeeded",
        collection_name="notes",
        progress_processed=1,
        progress_total=1,
        result=result,
        attempts=1,
        created_at=moment,
        started_at=moment,
        finished_at=moment,
    )
    return Job(**{**values, **fields})


def test_every_job_type_has_its_schema():
    assert set(JOB_SCHEMAS) == set(JOB_TYPES) == set(RESULTS)


@pytest.mark.parametrize("job_type", JOB_TYPES)
def test_a_finished_job_reads_exactly_as_serialized(job_type):
    job = job_to_dict(finished_job(job_type, RESULTS[job_type]))
    assert JobSchema().dump(job) == job


@pytest.mark.parametrize("job_type", JOB_TYPES)
def test_a_failed_job_without_result_reads_exactly_as_serialized(job_type):
    job = job_to_dict(finished_job(job_type, None, status="failed", error_code="not_found", error_message="Gone."))
    assert JobSchema().dump(job) == job
