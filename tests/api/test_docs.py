"""The OpenAPI document describes the contract; the docs pages need no internet."""

from __future__ import annotations

import re

import pytest

from app.services.jobs import JOB_TYPES


@pytest.fixture(scope="module")
def spec(api) -> dict:
    return api.get("/openapi.json").json()


def operations(spec: dict):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                yield path, method, operation


def resolved(spec: dict, response: dict) -> dict:
    if "$ref" in response:
        return spec["components"]["responses"][response["$ref"].rsplit("/", 1)[-1]]
    return response


def test_openapi_document_is_valid_openapi_3(api):
    from openapi_spec_validator import validate

    validate(api.get("/openapi.json").json())


def test_openapi_describes_every_route(api):
    spec = api.get("/openapi.json").json()
    paths = spec["paths"]
    expected = {
        "/api/v1/collections": {"get", "post"},
        "/api/v1/collections/{name}": {"get", "delete"},
        "/api/v1/collections/{name}/documents": {"get", "post"},
        "/api/v1/collections/{name}/documents/{doc_id}": {"get", "delete"},
        "/api/v1/collections/{name}/search": {"post"},
        "/api/v1/collections/{name}/search/batch": {"post"},
        "/api/v1/pipelines": {"get"},
        "/api/v1/pipelines/{name}": {"get"},
        "/api/v1/jobs": {"get"},
        "/api/v1/jobs/{job_id}": {"get"},
        "/api/v1/jobs/{job_id}/cancel": {"post"},
        "/api/v1/webhooks": {"get", "post"},
        "/api/v1/webhooks/secret": {"get"},
        "/api/v1/webhooks/{endpoint_id}": {"get", "patch", "delete"},
        "/api/v1/webhooks/{endpoint_id}/rotate-secret": {"post"},
        "/api/v1/webhooks/{endpoint_id}/test": {"post"},
        "/api/v1/webhooks/{endpoint_id}/deliveries": {"get"},
        "/api/v1/webhooks/{endpoint_id}/deliveries/{delivery_id}/redeliver": {"post"},
        "/health": {"get"},
        "/health/live": {"get"},
        "/health/ready": {"get"},
        "/metrics": {"get"},
    }
    for path, methods in expected.items():
        assert path in paths, path
        assert methods <= set(paths[path]), (path, set(paths[path]))
    upload = paths["/api/v1/collections/{name}/documents"]["post"]
    assert {"application/json", "multipart/form-data"} <= set(upload["requestBody"]["content"])
    search = paths["/api/v1/collections/{name}/search"]["post"]
    assert "202" in search["responses"] and "422" in search["responses"]
    problem = spec["components"]["responses"]["UNPROCESSABLE_ENTITY"]["content"]
    assert "application/problem+json" in problem


def test_docs_pages_load_their_assets_from_this_server(api):
    for page in ("/docs", "/redoc", "/docs/", "/redoc/"):
        html = api.get(page)
        assert html.status_code == 200, page
        sources = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert sources, page
        for source in sources:
            assert source.startswith("/"), f"{page} loads {source} from elsewhere"
            assert api.get(source).status_code == 200, source


def test_every_operation_has_an_operation_id_a_summary_and_a_description(spec):
    ids = {(method, path): operation.get("operationId") for path, method, operation in operations(spec)}
    assert all(re.fullmatch(r"[a-z]+(_[a-z]+)*", str(operation_id)) for operation_id in ids.values()), ids
    assert len(set(ids.values())) == len(ids)
    for method, path, operation_id in [
        ("get", "/api/v1/collections", "list_collections"),
        ("post", "/api/v1/collections", "create_collection"),
        ("get", "/api/v1/collections/{name}", "get_collection"),
        ("delete", "/api/v1/collections/{name}", "delete_collection"),
        ("post", "/api/v1/collections/{name}/documents", "upload_documents"),
        ("get", "/api/v1/collections/{name}/documents", "list_documents"),
        ("get", "/api/v1/collections/{name}/documents/{doc_id}", "get_document"),
        ("delete", "/api/v1/collections/{name}/documents/{doc_id}", "delete_document"),
        ("post", "/api/v1/collections/{name}/search", "search_collection"),
        ("post", "/api/v1/collections/{name}/search/batch", "search_collection_batch"),
        ("get", "/api/v1/pipelines", "list_pipelines"),
        ("get", "/api/v1/pipelines/{name}", "get_pipeline"),
        ("get", "/api/v1/jobs", "list_jobs"),
        ("get", "/api/v1/jobs/{job_id}", "get_job"),
        ("post", "/api/v1/jobs/{job_id}/cancel", "cancel_job"),
        ("get", "/health", "health"),
        ("get", "/health/live", "health_live"),
        ("get", "/health/ready", "health_ready"),
        ("get", "/metrics", "metrics"),
    ]:
        assert ids[(method, path)] == operation_id
    for path, method, operation in operations(spec):
        assert operation.get("summary") and operation.get("description"), (method, path)


def test_a_job_is_one_schema_per_type_told_apart_by_its_type(spec):
    schemas = spec["components"]["schemas"]
    job = schemas["Job"]
    assert job["discriminator"]["propertyName"] == "type"
    mapping = job["discriminator"]["mapping"]
    assert set(mapping) == set(JOB_TYPES)
    assert sorted(ref["$ref"] for ref in job["oneOf"]) == sorted(mapping.values())
    result_refs = set()
    for job_type, ref in mapping.items():
        per_type = schemas[ref.rsplit("/", 1)[-1]]
        assert per_type["properties"]["type"]["enum"] == [job_type]
        assert "type" in per_type["required"] and "result" in per_type["required"]
        result_refs |= {branch["$ref"] for branch in per_type["properties"]["result"]["anyOf"] if "$ref" in branch}
    assert len(result_refs) == len(JOB_TYPES)  # a result schema of its own per type
    for path, method in [("/api/v1/jobs/{job_id}", "get"), ("/api/v1/collections/{name}/search", "post")]:
        responses = spec["paths"][path][method]["responses"]
        success = responses["200" if method == "get" else "202"]
        assert success["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Job"}


DESCRIBED_WITH_EXAMPLES = [
    "IngestJob",
    "SearchJob",
    "SearchBatchJob",
    "DeleteDocumentJob",
    "DeleteCollectionJob",
    "Progress",
    "JobError",
    "JobLinks",
    "SearchRequest",
    "SearchBatchRequest",
    "Hit",
    "Answer",
    "Citation",
    "IngestResult",
    "IngestFailure",
    "SearchResult",
    "SearchBatchResult",
    "QueryResult",
    "DeleteDocumentResult",
    "DeleteCollectionResult",
    "Problem",
    "FieldError",
]


def test_jobs_searches_hits_results_and_errors_describe_every_field_with_an_example(spec):
    schemas = spec["components"]["schemas"]
    for name in DESCRIBED_WITH_EXAMPLES:
        for field, schema in schemas[name]["properties"].items():
            assert schema.get("description") and "example" in schema, f"{name}.{field}"


def test_every_error_response_is_a_problem(spec):
    problem = {"application/problem+json": {"schema": {"$ref": "#/components/schemas/Problem"}}}
    for path, method, operation in operations(spec):
        if not path.startswith("/api/"):
            continue
        for status, response in operation["responses"].items():
            if status == "default" or status >= "400":
                assert resolved(spec, response).get("content") == problem, (method, path, status)


def test_the_headers_the_api_sends_are_documented(spec):
    def headers(path: str, method: str, status: str) -> set[str]:
        return set(resolved(spec, spec["paths"][path][method]["responses"][status]).get("headers", {}))

    submits = [
        (path, method)
        for path, method, operation in operations(spec)
        if "202" in operation["responses"]
        and operation["responses"]["202"]["content"]["application/json"]["schema"]["$ref"].endswith("/Job")
    ]
    assert len(submits) == 5
    for path, method in submits:
        assert {"Location", "Retry-After"} <= headers(path, method, "202")
        assert {"Location", "Idempotent-Replayed"} <= headers(path, method, "200")
    assert {"ETag", "Retry-After"} <= headers("/api/v1/jobs/{job_id}", "get", "200")
    assert {"ETag"} <= headers("/api/v1/jobs/{job_id}", "get", "304")
    assert {"Retry-After"} <= headers("/api/v1/collections/{name}/search", "post", "503")
    assert {"WWW-Authenticate"} <= headers("/api/v1/jobs", "get", "401")
    for path, method, operation in operations(spec):
        for status in operation["responses"]:
            if status == "default":
                continue
            names = headers(path, method, status)
            assert "X-Request-ID" in names, (method, path, status)
            if path.startswith("/api/"):
                assert {"X-RateLimit-Limit", "X-RateLimit-Remaining", "X-RateLimit-Reset"} <= names
            if status in ("429", "503"):
                assert "Retry-After" in names, (method, path, status)
    for header in spec["components"]["headers"].values():
        assert header["description"] and header["schema"]
