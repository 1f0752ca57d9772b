"""Input an attacker or a careless client sends: unpaired surrogates, NUL
bytes, overlong and oddly typed values. Each is a 404 or a 422 naming the
field, identically on SQLite and PostgreSQL; none is a 500 or a failed job."""

from __future__ import annotations

import pytest

from tests.integration.corpora import unique
from tests.integration.problems import assert_problem


def fields_of(response, status: int = 422) -> list[str]:
    return [e["field"] for e in assert_problem(response, status, "validation_error")["errors"]]


@pytest.mark.parametrize("bad", ["a\ud800b", "a\x00b"])
def test_surrogates_and_nul_in_bodies_are_422_naming_the_field(api, collection, bad):
    assert "description" in fields_of(api.post("/api/v1/collections", json={"name": unique("c"), "description": bad}))
    assert "name" in fields_of(api.post("/api/v1/keys", json={"name": bad, "scopes": ["read"]}))
    search = f"/api/v1/collections/{collection}/search"
    assert "query" in fields_of(api.post(search, json={"query": bad}))
    assert "filters.team" in fields_of(api.post(search, json={"query": "x", "filters": {"team": bad}}))
    documents = f"/api/v1/collections/{collection}/documents"
    assert "documents.0.text" in fields_of(api.post(documents, json={"documents": [{"text": bad}]}))
    assert "documents.0.id" in fields_of(api.post(documents, json={"documents": [{"id": bad, "text": "x"}]}))
    assert "documents.0.metadata.k" in fields_of(
        api.post(documents, json={"documents": [{"text": "x", "metadata": {"k": bad}}]})
    )
    multipart = api.post(
        documents, files=[("files", ("a.txt", b"fine", "text/plain"))], data={"metadata": '{"k": "a\\u0000b"}'}
    )
    assert "metadata.k" in fields_of(multipart)


def test_a_bad_key_whose_value_holds_bad_keys_too_is_422_naming_both(api, collection):
    """The key itself cannot be stored, and neither can a key inside its value."""
    metadata = {"a\x00b": [{"c\ud800": 1}]}
    documents = f"/api/v1/collections/{collection}/documents"
    fields = fields_of(api.post(documents, json={"documents": [{"text": "x", "metadata": metadata}]}))
    assert any("a\x00b" in field for field in fields) and any("c\ud800" in field for field in fields), fields


@pytest.mark.parametrize("segment", ["a%00b", "a%0A", "x" * 3000, "%ED%A0%80"])
def test_odd_path_segments_are_404(api, segment):
    for path in (f"/api/v1/jobs/{segment}", f"/api/v1/collections/{segment}"):
        assert_problem(api.get(path), 404, "not_found")
    assert_problem(api.post(f"/api/v1/jobs/{segment}/cancel"), 404, "not_found")
    assert_problem(api.delete(f"/api/v1/keys/{segment}"), 404, "not_found")


def test_nul_in_query_parameters_is_422(api):
    assert "collection" in fields_of(api.get("/api/v1/jobs", params={"collection": "a\x00b"}))
    assert "cursor" in fields_of(api.get("/api/v1/jobs", params={"cursor": "a\x00b"}))


def test_a_name_with_a_trailing_newline_is_422(api):
    assert "name" in fields_of(api.post("/api/v1/collections", json={"name": "abc\n"}))
    assert "name" in fields_of(api.post("/api/v1/collections", json={"name": "a" * 63 + "\n"}))


@pytest.mark.parametrize("top_k", [5.5, "5", True, None])
def test_numbers_are_not_coerced(api, collection, top_k):
    response = api.post(f"/api/v1/collections/{collection}/search", json={"query": "x", "top_k": top_k})
    assert fields_of(response) == ["top_k"]


def test_unknown_query_parameters_are_422(api, collection):
    assert "surprise" in fields_of(api.get("/api/v1/jobs", params={"surprise": "1"}))
    assert "surprise" in fields_of(api.get(f"/api/v1/collections/{collection}", params={"surprise": "1"}))


def test_a_document_without_tokens_fails_alone(api):
    name = unique("tokens")
    job = api.ingest(name, [{"id": "blank", "text": "\u200b"}, {"id": "good", "text": "good doc"}])
    assert job["status"] == "succeeded", job
    assert job["result"]["documents"] == 1
    assert [f["source"] for f in job["result"]["failed"]] == ["blank"]
    assert "no text" in job["result"]["failed"][0]["error"]
    files = api.post(
        f"/api/v1/collections/{name}/documents",
        files=[("files", ("junk.txt", b"\x01\x02", "text/plain")), ("files", ("ok.txt", b"a fine file", "text/plain"))],
    )
    job = api.wait_job(files.json()["id"])
    assert job["status"] == "succeeded" and job["result"]["documents"] == 1
    assert [f["source"] for f in job["result"]["failed"]] == ["junk.txt"]


def nested(depth: int) -> str:
    return "[" * depth + "]" * depth


@pytest.mark.parametrize("depth", [40, 10_000])
def test_deeply_nested_json_is_422_naming_the_field(api, collection, depth):
    """Shallow enough for the parser (40) or past its own recursion limit
    (10,000): either way the field is named and nothing is stored or run."""
    deep = nested(depth)
    documents, search = f"/api/v1/collections/{collection}/documents", f"/api/v1/collections/{collection}/search"
    # Loopback and a port nobody serves: no delivery to it could leave the machine.
    endpoint = api.post("/api/v1/webhooks", json={"url": "http://127.0.0.1:9/hook", "events": ["*"]}).json()
    for path, body, field in [
        (search, f'{{"query": {deep}}}', "query"),
        (search, f'{{"query": "x", "filters": {{"team": {deep}}}}}', "team"),
        (search, deep, "body"),
        (f"/api/v1/collections/{collection}/search/batch", f'{{"queries": ["x"], "filters": {deep}}}', "filters"),
        (documents, f'{{"documents": [{{"text": "x", "metadata": {{"k": {deep}}}}}]}}', "k"),
        (documents, f'{{"documents": [{{"text": {deep}}}]}}', "text"),
        ("/api/v1/collections", f'{{"name": "n", "description": {deep}}}', "description"),
        ("/api/v1/webhooks", f'{{"url": {deep}, "events": ["*"]}}', "url"),
        (f"/api/v1/webhooks/{endpoint['id']}", f'{{"url": {deep}}}', "url"),
    ]:
        method = api.patch if path.startswith("/api/v1/webhooks/") else api.post
        response = method(path, data=body, headers={"Content-Type": "application/json"})
        [error] = assert_problem(response, 422, "validation_error")["errors"]
        assert error["field"] == field or error["field"].endswith(f".{field}"), (path, response.text)
    multipart = api.post(
        documents, files=[("files", ("a.txt", b"fine", "text/plain"))], data={"metadata": f'{{"k": {deep}}}'}
    )
    assert fields_of(multipart)[0] in ("metadata", "k", "metadata.k")
    assert api.get("/api/v1/jobs", params={"collection": collection}).json()["items"] == []
    # The tier's later jobs owe it no events.
    assert api.delete(f"/api/v1/webhooks/{endpoint['id']}").status_code == 204


def test_metadata_and_filters_are_bounded_in_size(api, collection):
    documents, search = f"/api/v1/collections/{collection}/documents", f"/api/v1/collections/{collection}/search"
    big = {"k": "x" * 17_000}
    assert fields_of(api.post(documents, json={"documents": [{"text": "x", "metadata": big}]})) == [
        "documents.0.metadata"
    ]
    many_keys = {f"k{i}": "v" for i in range(65)}
    assert fields_of(api.post(search, json={"query": "x", "filters": many_keys})) == ["filters"]
    many_values = {"k": [str(i) for i in range(1001)]}
    assert fields_of(api.post(search, json={"query": "x", "filters": many_values})) == ["filters"]
