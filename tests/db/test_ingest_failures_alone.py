"""A job never fails as a whole for one document's content: whatever one
document holds that the database cannot store, that document (or record)
fails alone in `result.failed` and the others are ingested, on SQLite and
on PostgreSQL alike. And a document under a new id keeps that id when its
text is already stored under another."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from sqlalchemy import func, select, update
from sqlalchemy.exc import DataError

from app.models import Chunk, Collection, Document, Job
from app.services import documents, jobs, staging
from app.services.collections import get_or_create_collection
from app.services.errors import NotFound
from app.services.handlers import ingest
from app.services.keys import SCOPES, Principal

PRINCIPAL = Principal("default", "test-key", frozenset(SCOPES), "enterprise")
GOOD = {"id": "good-n", "text": "good neighbour owl"}


@pytest.fixture
def collection(runtime):
    name = f"f-{uuid.uuid4().hex[:8]}"
    with runtime.session_scope() as session:
        get_or_create_collection(session, "default", name)
        session.commit()
        return session.scalars(select(Collection).where(Collection.name == name)).one()


def run_documents(runtime, collection, docs) -> dict:
    """Documents staged as the web side stages them, with no API check in
    between: what an older web process, or another client of the service,
    may have queued."""
    with runtime.session_scope() as session:
        job_id = staging.submit_documents(session, PRINCIPAL, collection.name, docs).id
    return finished(runtime, job_id)


def run_files(runtime, collection, files: dict[str, bytes]) -> dict:
    uploads = [staging.Upload(name, io.BytesIO(data)) for name, data in files.items()]
    with runtime.session_scope() as session:
        job_id = staging.submit_files(session, PRINCIPAL, collection.name, uploads).id
    return finished(runtime, job_id)


def finished(runtime, job_id) -> dict:
    assert jobs.run(job_id) == "succeeded"
    with runtime.session_scope() as session:
        return session.get(Job, job_id).result


def stored_ids(runtime, collection) -> set[str]:
    with runtime.session_scope() as session:
        return set(session.scalars(select(Document.external_id).where(Document.collection_id == collection.id)))


def failures(result) -> dict[str, str]:
    return {failure["source"]: failure["error"] for failure in result["failed"]}


@pytest.mark.parametrize("number", [float("nan"), float("inf"), -float("inf")])
def test_a_document_with_non_finite_metadata_fails_alone(runtime, collection, number):
    result = run_documents(runtime, collection, [GOOD, {"id": "nan2", "text": "x", "metadata": {"x": number}}])
    assert result["documents"] == 1
    assert "metadata.x" in failures(result)["nan2"] and "finite" in failures(result)["nan2"]
    assert stored_ids(runtime, collection) == {"good-n"}


def test_text_ids_and_metadata_no_database_stores_fail_alone(runtime, collection):
    bad = [
        {"id": "nul-text", "text": "before\x00after"},
        {"id": "surrogate-text", "text": "lone \ud800 surrogate"},
        {"id": "nul-key", "text": "a key with NUL", "metadata": {"k\x00": "v"}},
        {"id": "nul-value", "text": "a value with NUL", "metadata": {"k": ["ok", "v\x00"]}},
        {"id": "nul\x00id", "text": "an id with NUL"},
        {"id": "i" * 300, "text": "an id too long"},
    ]
    result = run_documents(runtime, collection, [GOOD, *bad])
    assert result["documents"] == 1 and len(result["failed"]) == len(bad)
    reasons = failures(result)
    assert "text" in reasons["nul-text"] and "NUL" in reasons["nul-text"]
    assert "surrogate" in reasons["surrogate-text"]
    assert "metadata.k" in reasons["nul-key"] and "metadata.k.1" in reasons["nul-value"]
    # The report itself holds nothing unstorable: the id is shown with a replacement character.
    assert "id" in reasons["nul\ufffdid"]
    assert "longer than 256" in reasons["i" * 300]
    assert stored_ids(runtime, collection) == {"good-n"}


def test_a_json_lines_file_with_bad_lines_ingests_the_good_ones(runtime, collection):
    lines = [
        '{"id": "line-a", "text": "Sourdough starters live on flour and water."}',
        '{"id": "broken", "text": "no closing brace"',
        "",
        '["not", "an object"]',
        '{"id": "nan-meta", "text": "a number JSON has not", "metadata": {"w": NaN}}',
        '{"id": "nul-text", "text": "NUL \\u0000 inside"}',
        '{"id": "line-b", "text": "Kilns fire clay pottery at high temperatures."}',
    ]
    result = run_files(runtime, collection, {"records.jsonl": "\n".join(lines).encode()})
    assert result["documents"] == 2
    assert stored_ids(runtime, collection) == {"line-a", "line-b"}
    reasons = failures(result)
    assert set(reasons) == {"records.jsonl[1]", "records.jsonl[2]", "records.jsonl[3]", "records.jsonl[4]"}
    assert reasons["records.jsonl[1]"].startswith("line 2: not valid JSON")
    assert reasons["records.jsonl[2]"].startswith("line 4:") and "object" in reasons["records.jsonl[2]"]
    assert "finite" in reasons["records.jsonl[3]"] and "NUL" in reasons["records.jsonl[4]"]


def test_a_json_array_with_a_bad_record_ingests_the_others(runtime, collection):
    records = [{"id": "rec-a", "text": "Falconry trains hawks."}, {"id": 7, "text": "a number id"}, {"text": " "}]
    result = run_files(runtime, collection, {"records.json": json.dumps(records).encode()})
    assert result["documents"] == 1 and stored_ids(runtime, collection) == {"rec-a"}
    assert set(failures(result)) == {"records.json[1]", "records.json[2]"}


def test_a_queued_filename_holding_nul_is_cleaned_and_the_good_file_ingested(runtime, collection):
    """A job queued with the raw name (by a web process before names were
    cleaned at upload) still stores both files."""
    uploads = [
        staging.Upload("good.txt", io.BytesIO(b"A good file about owls.")),
        staging.Upload("bad.txt", io.BytesIO(b"A file about herons.")),
    ]
    with runtime.session_scope() as session:
        job = staging.submit_files(session, PRINCIPAL, collection.name, uploads)
        sources = [dict(source) for source in job.params["sources"]]
        sources[1]["filename"] = "nul\x00name.txt"
        session.execute(update(Job).where(Job.id == job.id).values(params={**job.params, "sources": sources}))
        session.commit()
        job_id = job.id
    result = finished(runtime, job_id)
    assert (result["documents"], result["failed"]) == (2, [])
    assert stored_ids(runtime, collection) == {"good.txt", "nul_name.txt"}


def test_a_filename_holding_control_characters_is_cleaned_at_upload(runtime, collection):
    result = run_files(
        runtime, collection, {"good.txt": b"Owls hunt at night.", "nul\x00na\x1bme.txt": b"Herons wade."}
    )
    assert (result["documents"], result["failed"]) == (2, [])
    assert stored_ids(runtime, collection) == {"good.txt", "nul_na_me.txt"}


def test_a_name_too_long_to_store_fails_alone(runtime, collection):
    name = "n" * 600 + ".jsonl"
    records = b'{"id": "rec-long", "text": "A record in a file with a very long name."}\n'
    result = run_files(runtime, collection, {name: records, "good.txt": b"Owls hunt at night."})
    assert result["documents"] == 1 and stored_ids(runtime, collection) == {"good.txt"}
    assert "longer than" in failures(result)[f"{name}[0]"]


def test_a_document_the_database_refuses_fails_alone(runtime, collection, monkeypatch):
    """The checks before storing come first; should a value get past them,
    the database's refusal still fails that one document, not the job."""
    store = ingest._replace_document

    def refusing(session, ctx, doc):
        if doc.external_id == "refused":
            raise DataError("INSERT INTO documents ...", {}, ValueError("invalid input syntax for type json"))
        store(session, ctx, doc)

    monkeypatch.setattr(ingest, "_replace_document", refusing)
    result = run_documents(runtime, collection, [GOOD, {"id": "refused", "text": "a text the database refuses"}])
    assert result["documents"] == 1 and stored_ids(runtime, collection) == {"good-n"}
    assert "invalid input syntax for type json" in failures(result)["refused"]


# --- the same text under a new id ----------------------------------------------------


def get_document(runtime, collection, document_id):
    with runtime.session_scope() as session:
        document = documents.get_document(session, "default", collection.name, document_id)
        return document.meta, document.chunk_count


def chunk_count(runtime, collection) -> int:
    with runtime.session_scope() as session:
        return session.scalar(select(func.count()).where(Chunk.collection_id == collection.id))


def test_a_new_id_whose_text_is_stored_keeps_its_id_and_metadata(runtime, collection):
    run_documents(runtime, collection, [{"id": "owl", "text": "good neighbour owl", "metadata": {"v": 1}}])
    result = run_documents(
        runtime, collection, [{"id": "owl-copy", "text": "good neighbour owl", "metadata": {"v": 2}}]
    )
    assert (result["documents"], result["chunks"], result["skipped_duplicates"]) == (1, 1, 0)
    assert result["same_text"] == [{"id": "owl-copy", "same_text_as": "owl"}]
    assert get_document(runtime, collection, "owl-copy") == ({"v": 2}, 1)
    assert get_document(runtime, collection, "owl") == ({"v": 1}, 1)
    assert chunk_count(runtime, collection) == 2
    # Each is a document of its own: deleting one leaves the other whole.
    with runtime.session_scope() as session:
        job = documents.submit_delete_document(session, PRINCIPAL, collection.name, "owl")
    assert jobs.run(job.id) == "succeeded"
    assert get_document(runtime, collection, "owl-copy") == ({"v": 2}, 1)
    with pytest.raises(NotFound):
        get_document(runtime, collection, "owl")


def test_new_ids_sharing_a_text_in_one_request_are_all_kept(runtime, collection):
    same = "Herons stand still in shallow water."
    result = run_documents(runtime, collection, [{"id": "a", "text": same}, {"id": "b", "text": same}])
    assert (result["documents"], result["skipped_duplicates"]) == (2, 0)
    assert result["same_text"] == [{"id": "b", "same_text_as": "a"}]
    assert stored_ids(runtime, collection) == {"a", "b"}


def test_the_same_text_again_under_its_own_id_or_none_is_still_a_duplicate(runtime, collection):
    run_documents(runtime, collection, [{"id": "owl", "text": "good neighbour owl"}])
    result = run_documents(
        runtime, collection, [{"id": "owl", "text": "good neighbour owl"}, {"text": "good neighbour owl"}]
    )
    assert (result["documents"], result["chunks"], result["skipped_duplicates"]) == (0, 0, 2)
    assert result["same_text"] == []
    assert stored_ids(runtime, collection) == {"owl"} and chunk_count(runtime, collection) == 1
