"""CORS_ORIGINS lets named browser origins call the API: the preflight needs
no key, and a script may read the headers a client needs."""

from __future__ import annotations

import pytest


@pytest.fixture
def client(make_app):
    return make_app(cors_origins=("https://app.example",)).test_client()


def _preflight(client, origin: str):
    return client.options(
        "/api/v1/collections",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type, Idempotency-Key",
        },
    )


def test_a_preflight_from_an_allowed_origin_is_answered_without_a_key(client):
    response = _preflight(client, "https://app.example")
    assert response.status_code == 200
    assert response.headers["Access-Control-Allow-Origin"] == "https://app.example"
    allowed = {h.strip().lower() for h in response.headers["Access-Control-Allow-Headers"].split(",")}
    assert {"authorization", "content-type", "idempotency-key"} <= allowed
    assert "POST" in response.headers["Access-Control-Allow-Methods"]


def test_an_answer_to_an_allowed_origin_exposes_the_headers_clients_read(client):
    response = client.get("/api/v1/jobs/nope", headers={"Origin": "https://app.example"})
    assert response.status_code == 401  # still needs a key
    exposed = {h.strip() for h in response.headers["Access-Control-Expose-Headers"].split(",")}
    assert {"Location", "Retry-After", "ETag", "X-Request-ID", "X-RateLimit-Remaining"} <= exposed


def test_another_origin_gets_no_cors_headers(client):
    assert "Access-Control-Allow-Origin" not in _preflight(client, "https://evil.example").headers
