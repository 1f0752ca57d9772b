"""The upload route in this process, against the test database and Redis:
what is refused at submit time (422 naming the field, 413), and what a
multipart upload with a bad filename becomes once its job runs."""

from __future__ import annotations

import io
import json
import uuid

import pytest
from sqlalchemy import select

from app.models import Job
from app.services import jobs
from app.services.keys import create_key

UPLOAD_LIMIT_MB = 1


@pytest.fixture
def client(runtime, make_app, redis_server):
    limiter_url = redis_server.url.rsplit("/", 1)[0] + "/2"
    app = make_app(ratelimit_storage_url=limiter_url, max_upload_mb=UPLOAD_LIMIT_MB)
    with runtime.session_scope() as session:
        _, key = create_key(session, "default", name="upload-api", scopes=["read", "write"], tier="enterprise")
    test_client = app.test_client()
    test_client.environ_base["HTTP_AUTHORIZATION"] = f"Bearer {key}"
    return test_client


@pytest.fixture
def collection():
    return f"up-{uuid.uuid4().hex[:8]}"


def post_raw_json(client, collection: str, body: str):
    return client.post(
        f"/api/v1/collections/{collection}/documents", data=body.encode(), content_type="application/json"
    )


def fields_of(response) -> set[str]:
    return {error["field"] for error in response.get_json().get("errors", [])}


@pytest.mark.parametrize("number", ["NaN", "Infinity", "-Infinity", "1e400"])
def test_a_non_finite_number_in_metadata_is_refused_naming_the_field(client, collection, number):
    body = (
        '{"documents": [{"id": "good-n", "text": "good neighbour owl"},'
        f' {{"id": "nan2", "text": "x", "metadata": {{"x": {number}}}}}]}}'
    )
    response = post_raw_json(client, collection, body)
    assert response.status_code == 422, response.get_json()
    assert response.get_json()["code"] == "validation_error"
    assert fields_of(response) == {"documents.1.metadata.x"}


def test_a_non_finite_number_anywhere_in_a_json_body_is_refused(client, collection):
    client.post("/api/v1/collections", json={"name": collection})
    response = client.post(
        f"/api/v1/collections/{collection}/search",
        data=b'{"query": "owls", "filters": {"rank": [1, NaN]}}',
        content_type="application/json",
    )
    assert response.status_code == 422
    assert fields_of(response) == {"filters.rank.1"}


def test_a_non_finite_number_in_the_multipart_metadata_part_is_refused(client, collection):
    response = client.post(
        f"/api/v1/collections/{collection}/documents",
        data={"files": (io.BytesIO(b"A good file."), "good.txt"), "metadata": '{"weight": Infinity}'},
        content_type="multipart/form-data",
    )
    assert response.status_code == 422
    assert fields_of(response) == {"metadata.weight"}


def test_a_chunked_json_body_over_the_limit_is_413(client, collection):
    text = "x" * (UPLOAD_LIMIT_MB * 1024 * 1024)
    body = json.dumps({"documents": [{"text": text}]}).encode()
    response = client.post(
        f"/api/v1/collections/{collection}/documents",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        # What gunicorn sets: it ends a chunked body itself, with no Content-Length.
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 413, response.get_json()
    assert response.get_json()["code"] == "payload_too_large"


def test_a_chunked_json_body_within_the_limit_is_accepted(client, collection):
    body = json.dumps({"documents": [{"id": "small", "text": "A small chunked upload."}]}).encode()
    response = client.post(
        f"/api/v1/collections/{collection}/documents",
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={"Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )
    assert response.status_code == 202, response.get_json()


def test_a_filename_holding_nul_is_cleaned_and_the_good_file_is_ingested(client, collection, runtime):
    response = client.post(
        f"/api/v1/collections/{collection}/documents",
        data={
            "files": [
                (io.BytesIO(b"A good file about owls."), "good.txt"),
                (io.BytesIO(b"A file about herons."), "nul\x00name.txt"),
            ]
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 202, response.get_json()
    job_id = response.get_json()["id"]
    assert jobs.run(job_id) == "succeeded"
    with runtime.session_scope() as session:
        result = session.scalars(select(Job.result).where(Job.id == job_id)).one()
    assert (result["documents"], result["failed"]) == (2, [])
    assert client.get(f"/api/v1/collections/{collection}/documents/good.txt").status_code == 200
    cleaned = client.get(f"/api/v1/collections/{collection}/documents/nul_name.txt")
    assert cleaned.status_code == 200 and cleaned.get_json()["metadata"]["filename"] == "nul_name.txt"
