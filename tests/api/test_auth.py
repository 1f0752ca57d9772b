"""API keys: the auth matrix, scopes, tenant isolation, rotation and
revocation, through the HTTP API (no plaintext key in the processes' logs:
tests/integration/test_auth.py)."""

from __future__ import annotations

import secrets
import time
from datetime import UTC

import pytest

from app.services.keys import AUTH_CACHE_SECONDS
from tests.api.inprocess import Client
from tests.integration.corpora import unique
from tests.integration.problems import PROBLEM


def make_key(admin: Client, scopes: list[str], **extra) -> dict:
    response = admin.post("/api/v1/keys", json={"name": unique("k"), "scopes": scopes, **extra})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def admin(api) -> Client:
    return api  # the tier's own client holds an admin key of tenant "api"


@pytest.fixture(scope="module")
def world(api, admin):
    """The tier tenant's objects: a collection with a document, a finished job, a key."""
    name = unique("mine")
    job = admin.ingest(name, [{"id": "d1", "text": "Otters hold hands while they sleep."}])
    assert job["status"] == "succeeded"
    return {"collection": name, "job": job["id"], "key": make_key(admin, ["read"])["id"]}


def routes(world) -> list[tuple[str, str, dict]]:
    """A representative route of each resource, with a body that would pass."""
    c = world["collection"]
    return [
        ("GET", "/api/v1/collections", {}),
        ("POST", "/api/v1/collections", {"json": {"name": unique("new")}}),
        ("GET", f"/api/v1/collections/{c}", {}),
        ("POST", f"/api/v1/collections/{c}/documents", {"json": {"documents": [{"text": "x"}]}}),
        ("POST", f"/api/v1/collections/{c}/search", {"json": {"query": "otters"}}),
        ("GET", "/api/v1/jobs", {}),
        ("GET", f"/api/v1/jobs/{world['job']}", {}),
        ("GET", "/api/v1/keys", {}),
        ("POST", "/api/v1/keys", {"json": {"name": "n", "scopes": ["read"]}}),
    ]


def call(client: Client, method: str, path: str, headers: dict | None = None, **kwargs):
    return client.http.request(method, client.url(path), headers=headers or {}, timeout=30, **kwargs)


def assert_401(response, says: str) -> None:
    assert response.status_code == 401, (response.request.method, response.request.url, response.text)
    assert response.headers["Content-Type"] == PROBLEM
    assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert response.json()["code"] == "unauthorized"
    assert says in response.json()["detail"]


def test_missing_malformed_and_unknown_keys_are_401(api, world):
    anonymous = api.client()
    unknown = "qk_" + secrets.token_hex(6) + "_" + secrets.token_urlsafe(32)
    for method, path, body in routes(world):
        assert_401(call(anonymous, method, path, **body), "No API key")
        assert_401(call(anonymous, method, path, {"Authorization": "Bearer not-a-key"}, **body), "malformed")
        assert_401(call(anonymous, method, path, {"Authorization": "Basic dXNlcjpwdw=="}, **body), "malformed")
        assert_401(call(anonymous, method, path, {"X-API-Key": unknown}, **body), "not valid")


def test_revoked_and_expired_keys_are_401(api, admin, world):
    revoked = make_key(admin, ["read", "write", "admin"])
    assert admin.delete(f"/api/v1/keys/{revoked['id']}").status_code == 204
    expiring = make_key(admin, ["read", "write", "admin"], expires_at=_in_seconds(2))
    time.sleep(2.5)
    for method, path, body in routes(world):
        assert_401(call(api.client(revoked["key"]), method, path, **body), "revoked")
        assert_401(call(api.client(expiring["key"]), method, path, **body), "expired")


def test_each_route_needs_its_scope(api, admin, world):
    read_only = api.client(make_key(admin, ["read"])["key"])
    write_only = api.client(make_key(admin, ["write"])["key"])
    admin_only = api.client(make_key(admin, ["admin"])["key"])
    for method, path, body in routes(world):
        needed = "admin" if path.startswith("/api/v1/keys") else ("read" if method == "GET" else "write")
        for scope, client in (("read", read_only), ("write", write_only), ("admin", admin_only)):
            response = call(client, method, path, **body)
            if scope == needed:
                assert response.status_code < 400, (method, path, scope, response.text)
            else:
                assert response.status_code == 403, (method, path, scope, response.text)
                assert response.json()["code"] == "forbidden"
                assert needed in response.json()["detail"]


def test_both_header_styles_are_accepted(api, admin):
    key = make_key(admin, ["read"])["key"]
    anonymous = api.client()
    assert call(anonymous, "GET", "/api/v1/jobs", {"Authorization": f"Bearer {key}"}).status_code == 200
    assert call(anonymous, "GET", "/api/v1/jobs", {"X-API-Key": key}).status_code == 200


def test_another_tenants_objects_are_404_on_every_route(api, world):
    other = api.client(api.create_key(unique("tenant-b")))
    c = world["collection"]
    for method, path, body in [
        ("GET", f"/api/v1/collections/{c}", {}),
        ("POST", f"/api/v1/collections/{c}/search", {"json": {"query": "otters"}}),
        ("GET", f"/api/v1/jobs/{world['job']}", {}),
        ("POST", f"/api/v1/jobs/{world['job']}/cancel", {}),
        ("DELETE", f"/api/v1/keys/{world['key']}", {}),
        ("POST", f"/api/v1/keys/{world['key']}/rotate", {}),
    ]:
        response = call(other, method, path, **body)
        assert response.status_code == 404, (method, path, response.text)
        assert response.json()["code"] == "not_found"

    # Lists and filters show only the caller's own objects.
    names = [x["name"] for x in other.get("/api/v1/collections", params={"limit": 100}).json()["items"]]
    assert c not in names
    assert other.get("/api/v1/jobs", params={"collection": c}).json()["items"] == []
    job_ids = [j["id"] for j in other.get("/api/v1/jobs", params={"limit": 100}).json()["items"]]
    assert world["job"] not in job_ids
    key_ids = [k["id"] for k in other.get("/api/v1/keys", params={"limit": 100}).json()["items"]]
    assert world["key"] not in key_ids

    # Names are per tenant: the other tenant's upload makes its own collection.
    mine_before = api.get(f"/api/v1/collections/{c}").json()["chunks"]
    job = other.ingest(c, [{"text": "Penguins propose with pebbles."}])
    assert job["status"] == "succeeded"
    assert other.get(f"/api/v1/collections/{c}").json()["documents"] == 1
    hits = other.search(c, query="otters sleeping")["result"]["hits"]
    assert [h["text"] for h in hits] == ["Penguins propose with pebbles."]
    assert api.get(f"/api/v1/collections/{c}").json()["chunks"] == mine_before
    same_name = unique("same")
    assert api.post("/api/v1/collections", json={"name": same_name}).status_code == 201
    assert other.post("/api/v1/collections", json={"name": same_name}).status_code == 201


def test_revocation_takes_effect_within_a_second(api, admin):
    """Each web process believes a verified key for up to a second without a
    database read; a revoked key must be refused by every one after that."""
    key = make_key(admin, ["read"])
    client = api.client(key["key"])
    for _ in range(8):  # every web process has it cached
        assert client.get("/api/v1/jobs").status_code == 200
    assert admin.delete(f"/api/v1/keys/{key['id']}").status_code == 204
    time.sleep(AUTH_CACHE_SECONDS)
    for _ in range(8):
        assert_401(client.get("/api/v1/jobs"), "revoked")
    listed = {k["id"]: k for k in admin.get("/api/v1/keys", params={"limit": 100}).json()["items"]}
    assert listed[key["id"]]["revoked"] is True


def test_rotation_keeps_the_old_key_for_the_grace_period(api, admin):
    old = make_key(admin, ["read", "write"], tier="pro")
    response = admin.post(f"/api/v1/keys/{old['id']}/rotate")
    assert response.status_code == 201
    new = response.json()
    assert new["key"] != old["key"] and new["prefix"] != old["prefix"]
    assert (new["scopes"], new["tier"], new["rotated_from"]) == (["read", "write"], "pro", old["id"])

    assert api.client(old["key"]).get("/api/v1/jobs").status_code == 200  # in grace
    assert api.client(new["key"]).get("/api/v1/jobs").status_code == 200
    time.sleep(3.5)  # KEY_ROTATION_GRACE_SECONDS=3 in the tier's settings
    assert_401(api.client(old["key"]).get("/api/v1/jobs"), "expired")
    assert api.client(new["key"]).get("/api/v1/jobs").status_code == 200

    revoked = make_key(admin, ["read"])
    admin.delete(f"/api/v1/keys/{revoked['id']}")
    assert admin.post(f"/api/v1/keys/{revoked['id']}/rotate").status_code == 409


def test_key_lists_show_metadata_and_never_the_secret(api, admin):
    key = make_key(admin, ["read"], tier="pro", expires_at=_in_seconds(3600))
    assert key["key"].startswith(key["prefix"] + "_") and key["scopes"] == ["read"]
    api.client(key["key"]).get("/api/v1/jobs")
    listed = admin.get("/api/v1/keys", params={"limit": 100})
    assert key["key"] not in listed.text
    mine = next(k for k in listed.json()["items"] if k["id"] == key["id"])
    assert "key" not in mine
    assert mine["prefix"] == key["prefix"] and mine["tier"] == "pro" and mine["expires_at"]
    assert mine["last_used_at"] is not None


@pytest.mark.parametrize(
    "body,field",
    [
        ({"name": "x", "scopes": ["root"]}, "scopes.0"),
        ({"name": "x", "scopes": []}, "scopes"),
        ({"name": "x", "scopes": ["read"], "tier": "platinum"}, "tier"),
        ({"name": "x", "scopes": ["read"], "expires_at": "2001-01-01T00:00:00Z"}, "expires_at"),
        ({"scopes": ["read"]}, "name"),
    ],
)
def test_invalid_key_requests_are_422(admin, body, field):
    response = admin.post("/api/v1/keys", json=body)
    assert response.status_code == 422
    assert field in [e["field"] for e in response.json()["errors"]]


def _in_seconds(seconds: int) -> str:
    from datetime import datetime, timedelta

    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()
