"""The OpenAPI document describes the contract; the docs pages need no internet."""

from __future__ import annotations

import re

import pytest

pytestmark = pytest.mark.integration


def test_openapi_document_is_valid_openapi_3(service):
    from openapi_spec_validator import validate

    validate(service.get("/openapi.json").json())


def test_openapi_describes_every_route(service):
    spec = service.get("/openapi.json").json()
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


def test_docs_pages_load_their_assets_from_this_server(service):
    for page in ("/docs", "/redoc"):
        html = service.get(page)
        assert html.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', html.text)
        assert sources, page
        for source in sources:
            assert source.startswith("/"), f"{page} loads {source} from elsewhere"
            assert service.get(source).status_code == 200, source
