"""The `quarry` command against the app in this process (its client on
httpx's WSGI transport, jobs run by the inline worker): what a person sees
when something goes wrong. Over real processes: tests/integration/test_client.py."""

from __future__ import annotations

import json

import pytest
from click.testing import CliRunner

from quarry_client.cli import main
from tests.api.test_python_client import connect
from tests.integration.corpora import unique


class GivenClient:
    """The command's context, holding a client made by the test."""

    def __init__(self, client) -> None:
        self.client = client


@pytest.fixture
def quarry_command(api):
    tenant = api.client(api.create_key(unique("cli")))
    client, _ = connect(tenant)

    def run(*args: str):
        return CliRunner().invoke(main, list(args), obj=GivenClient(client))

    return run


def test_upload_ingests_what_it_can_and_names_every_file_it_could_not(quarry_command, tmp_path):
    folder = tmp_path / "notes"
    (folder / "sub").mkdir(parents=True)
    (folder / "owls.md").write_text("Owls hunt mice at night.")
    (folder / "fake.pdf").write_text("plain text is not a PDF")  # refused at upload (415)
    (folder / "latin1.txt").write_bytes(b"Caf\xe9 cr\xe8me")  # fails alone in the worker
    (folder / "sub" / "owls.md").write_text("Another file of the same name.")
    (folder / "photo.png").write_bytes(b"\x89PNG")

    uploaded = quarry_command("upload", "notes", str(folder), "--metadata", '{"year": 2024}', "--json")
    assert uploaded.exit_code == 1, uploaded.output
    report = json.loads(uploaded.stdout)
    failed = {f["source"].rsplit("/", 1)[-1]: f["error"] for f in report["failed"]}
    assert set(failed) == {"fake.pdf", "latin1.txt", "owls.md"}, failed
    assert "same" not in failed["fake.pdf"] and "UTF-8" in failed["latin1.txt"]
    assert report["skipped"] == [str(folder / "photo.png")]
    assert [job["result"]["documents"] for job in report["jobs"] if job["status"] == "succeeded"] == [1]

    # Metadata keeps its types, and so do the filters: 2024 matches, "2024" does not.
    typed = json.loads(quarry_command("search", "notes", "owls", "--filter", "year=2024", "--json").stdout)
    assert [hit["document_id"] for hit in typed["hits"]] == ["owls.md"]
    quoted = json.loads(quarry_command("search", "notes", "owls", "--filter", 'year="2024"', "--json").stdout)
    assert quoted["hits"] == []


@pytest.mark.parametrize(
    ("args", "status", "says"),
    [
        (["upload", "notes", ".", "--metadata", "[1]"], 2, "JSON object"),
        (["upload", "notes", ".", "--metadata", "{"], 2, "not JSON"),
        (["search", "notes", "owls", "--filter", "year"], 2, "KEY=VALUE"),
        (["collections", "show", "nothing-here"], 1, "not_found"),
        (["jobs", "wait", "no-such-job"], 1, "404"),
        (["listen"], 2, "--forward-to URL or --print"),
    ],
)
def test_mistakes_print_one_line_and_an_exit_status_never_a_traceback(quarry_command, args, status, says):
    done = quarry_command(*args)
    assert done.exit_code == status, done.output
    assert says in done.output and "Traceback" not in done.output
    assert done.exception is None or isinstance(done.exception, SystemExit)
