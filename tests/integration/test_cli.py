"""The operator's CLI takes names, and answers bad input with one clear line
and a non-zero exit code, never a traceback."""

from __future__ import annotations

import pytest

from tests.integration.corpora import unique

pytestmark = pytest.mark.integration


def assert_refused(done, says: str) -> None:
    assert done.returncode != 0
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], done.stderr


def test_index_rebuild_takes_the_tenant_by_name(service):
    tenant = unique("ops")
    client = service.client(service.create_key(tenant))
    job = client.ingest("notes", [{"text": "Lighthouses warn ships away from rocks."}])
    assert job["status"] == "succeeded"
    before = client.get("/api/v1/collections/notes").json()["generation"]

    done = service.flask("index", "rebuild", "notes", "--tenant", tenant)
    assert done.returncode == 0, done.stderr
    assert client.get("/api/v1/collections/notes").json()["generation"] == before + 1
    hits = client.search("notes", query="lighthouse")["result"]["hits"]
    assert hits[0]["text"] == "Lighthouses warn ships away from rocks."

    assert_refused(service.flask("index", "rebuild", "notes", "--tenant", unique("nobody")), "No tenant named")
    assert_refused(service.flask("index", "rebuild", "nothing-here", "--tenant", tenant), "No collection named")
    assert_refused(service.flask("keys", "revoke", "qk_000000000000"), "No API key")
