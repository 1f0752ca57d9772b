"""The operator's CLI takes names, and answers bad input with one clear line
and a non-zero exit code, never a traceback. Run through Flask's CLI runner
against the tier's app: the commands `flask --app wsgi` runs."""

from __future__ import annotations

import pytest

from tests.integration.corpora import unique


@pytest.fixture
def flask(app):
    runner = app.test_cli_runner()

    def run(*args: str):
        return runner.invoke(args=list(args))

    return run


def assert_refused(done, says: str) -> None:
    assert done.exit_code != 0
    # An exception that escaped the command would be a traceback in a terminal.
    assert isinstance(done.exception, SystemExit), done.exception
    assert "Traceback" not in done.stderr
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and says in lines[0], done.stderr


def test_index_rebuild_takes_the_tenant_by_name(api, flask):
    tenant = unique("ops")
    client = api.client(api.create_key(tenant))
    job = client.ingest("notes", [{"text": "Lighthouses warn ships away from rocks."}])
    assert job["status"] == "succeeded"
    before = client.get("/api/v1/collections/notes").json()["generation"]

    done = flask("index", "rebuild", "notes", "--tenant", tenant)
    assert done.exit_code == 0, done.output
    assert client.get("/api/v1/collections/notes").json()["generation"] == before + 1
    hits = client.search("notes", query="lighthouse")["result"]["hits"]
    assert hits[0]["text"] == "Lighthouses warn ships away from rocks."

    assert_refused(flask("index", "rebuild", "notes", "--tenant", unique("nobody")), "No tenant named")
    assert_refused(flask("index", "rebuild", "nothing-here", "--tenant", tenant), "No collection named")
    assert_refused(flask("keys", "revoke", "qk_000000000000"), "No API key")
