"""No plaintext API key is stored, logged by any of the service's processes
or documented (the auth contract itself: tests/api/test_auth.py)."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from app.models import Base
from devstack.client import Client
from tests.integration.corpora import unique

pytestmark = pytest.mark.integration


def make_key(admin: Client, scopes: list[str], **extra) -> dict:
    response = admin.post("/api/v1/keys", json={"name": unique("k"), "scopes": scopes, **extra})
    assert response.status_code == 201, response.text
    return response.json()


@pytest.fixture(scope="module")
def admin(service) -> Client:
    return service  # the stack's own client holds an admin key of tenant "main"


def test_no_plaintext_key_is_stored_logged_or_documented(service, admin, database_url):
    created = [make_key(admin, ["read", "write"])["key"] for _ in range(3)]
    created.append(service.create_key(unique("tenant-c")))
    for key in created:  # use them, so they pass through request handling and logs
        service.client(key).get("/api/v1/jobs", params={"limit": 1})
        service.client(key).post("/api/v1/collections", json={"name": unique("h")})

    engine = sa.create_engine(database_url)
    dump = []
    with engine.connect() as conn:
        for table in Base.metadata.sorted_tables:
            dump += [repr(tuple(row)) for row in conn.execute(table.select())]
    engine.dispose()
    text = "\n".join(dump)
    assert "qk_" in text  # the dump holds the keys' visible prefixes ...
    for key in created:
        assert key not in text  # ... but never a key
        secret = key.split("_", 2)[2]
        assert secret not in text

    logs = "".join(p.read_text(errors="replace") for p in service.workdir.glob("*.log"))
    assert logs, "no service logs to check"
    for key in created:
        assert key.split("_", 2)[2] not in logs

    spec = service.get("/openapi.json").text
    assert not re.search(r"qk_[0-9a-f]{12}_", spec)  # no example key in the docs
