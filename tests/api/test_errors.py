"""Every bad request gets an RFC 9457 problem, never a stack trace."""

from __future__ import annotations

import pytest

from tests.integration.problems import assert_problem


def test_unknown_job_is_404(api):
    assert_problem(api.get("/api/v1/jobs/does-not-exist"), 404, "not_found")


def test_unknown_collection_search_is_404(api):
    response = api.post("/api/v1/collections/nope-nope/search", json={"query": "x"})
    assert_problem(response, 404, "not_found")


def test_top_k_zero_is_422_naming_the_field(api, collection):
    response = api.post(f"/api/v1/collections/{collection}/search", json={"query": "x", "top_k": 0})
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["top_k"]
    assert body["errors"][0]["message"]


@pytest.mark.parametrize(
    "body,field",
    [
        ({"query": ""}, "query"),
        ({"query": "x" * 10001}, "query"),
        ({"query": "x", "pipeline": "quantum"}, "pipeline"),
        ({"query": "x", "top_k": 101}, "top_k"),
        ({"query": "x", "surprise": 1}, "surprise"),
        ({"top_k": 3}, "query"),
        ({"query": "x", "filters": {"k": {"nested": 1}}}, "filters"),
    ],
)
def test_invalid_search_fields_are_422(api, collection, body, field):
    response = api.post(f"/api/v1/collections/{collection}/search", json=body)
    errors = assert_problem(response, 422, "validation_error")["errors"]
    assert field in [e["field"] for e in errors]


def test_invalid_documents_name_the_nested_field(api, collection):
    response = api.post(
        f"/api/v1/collections/{collection}/documents",
        json={"documents": [{"text": "fine"}, {"text": "   "}]},
    )
    errors = assert_problem(response, 422, "validation_error")["errors"]
    assert errors[0]["field"] == "documents.1.text"


def test_invalid_collection_name_is_422(api):
    body = assert_problem(api.post("/api/v1/collections", json={"name": "Bad Name!"}), 422, "validation_error")
    assert body["errors"][0]["field"] == "name"
    upload = api.post("/api/v1/collections/Bad%20Name/documents", json={"documents": [{"text": "x"}]})
    assert_problem(upload, 422, "validation_error")


def test_malformed_json_is_400(api, collection):
    response = api.post(
        f"/api/v1/collections/{collection}/search",
        data=b'{"query": ',
        headers={"Content-Type": "application/json"},
    )
    assert_problem(response, 400, "validation_error")


def test_non_json_body_is_415(api, collection):
    response = api.post(
        f"/api/v1/collections/{collection}/search", data=b"query=x", headers={"Content-Type": "text/plain"}
    )
    assert_problem(response, 415, "unsupported_media_type")


def test_exe_upload_is_415(api, collection):
    response = api.post(
        f"/api/v1/collections/{collection}/documents",
        files=[("files", ("setup.exe", b"MZ\x90\x00\x03", "application/octet-stream"))],
    )
    body = assert_problem(response, 415, "unsupported_media_type")
    assert "setup.exe" in body["detail"]


def test_file_over_the_limit_is_413(api, collection):
    too_big = b"word " * (1024 * 1024 // 5 + 1000)  # a little over MAX_UPLOAD_MB=1
    response = api.post(
        f"/api/v1/collections/{collection}/documents",
        files=[("files", ("big.txt", too_big, "text/plain"))],
    )
    assert_problem(response, 413, "payload_too_large")


def test_wrong_method_is_405_problem(api):
    response = api.http.delete(api.url("/api/v1/jobs"))
    assert_problem(response, 405, "method_not_allowed")
    assert "GET" in response.headers["Allow"]


def test_unknown_route_is_404_problem(api):
    assert_problem(api.get("/api/v1/nothing-here"), 404, "not_found")


def test_bad_list_arguments_are_422(api):
    assert_problem(api.get("/api/v1/jobs", params={"limit": 0}), 422, "validation_error")
    assert_problem(api.get("/api/v1/jobs", params={"status": "sleeping"}), 422, "validation_error")
    assert_problem(api.get("/api/v1/jobs", params={"cursor": "!!!"}), 422, "validation_error")


def test_request_id_is_echoed_or_made(api):
    echoed = api.get("/health/live", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["X-Request-ID"] == "abc-123"
    made = api.get("/health/live")
    assert len(made.headers["X-Request-ID"]) >= 16
