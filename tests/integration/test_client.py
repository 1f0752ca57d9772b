"""quarry_client and the `quarry` command against the real service (the
shared stack: gunicorn, a Celery worker, Redis, the real model)."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
import threading
import tomllib
from pathlib import Path

import httpx
import pytest

from devstack.processes import BIN
from devstack.waiting import wait_until
from quarry_client import AsyncQuarry, Quarry
from tests.integration.corpora import TOPICS, large_corpus, unique

pytestmark = pytest.mark.integration


class CountsPolls(httpx.HTTPTransport):
    """Real HTTP, counting the GETs of each job."""

    def __init__(self) -> None:
        super().__init__()
        self.polls: dict[str, int] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET" and request.url.path.startswith("/api/v1/jobs/"):
            job_id = request.url.path.rsplit("/", 1)[1]
            self.polls[job_id] = self.polls.get(job_id, 0) + 1
        return super().handle_request(request)


def write_folder(root: Path, long_file: bool = False) -> Path:
    """A folder of topic notes (some in a subfolder), a file type the service
    does not read, and with `long_file` a file whose ingest takes seconds."""
    folder = root / "notes"
    (folder / "more").mkdir(parents=True)
    for index, (topic, text) in enumerate(TOPICS[:6]):
        (folder / ("more" if index % 2 else ".") / f"{topic}.md").write_text(f"# {topic}\n\n{text}\n")
    if long_file:
        (folder / "long.txt").write_text("\n\n".join(d["text"] for d in large_corpus(150)))
    (folder / "photo.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    return folder


@pytest.fixture
def key(service) -> str:
    return service.create_key(unique("client"))


def test_quarry_uploads_a_folder_waits_and_searches_polling_as_the_service_says(service, key, tmp_path):
    transport = CountsPolls()
    with Quarry(service.base_url, key, transport=transport) as quarry:
        ingest = quarry.documents.upload("notes", [write_folder(tmp_path, long_file=True)])
        result = ingest.wait(timeout=120).result
        assert (result.documents, result.failed) == (7, [])  # the .png is not sent
        search = quarry.search("notes", "where does honey come from?", top_k=3)
        hits = search.wait(timeout=60).result.hits
    assert hits[0].document_id == "bees.md" and hits[0].score > 0
    # The hints space the polls: a handful for an ingest of seconds, not dozens.
    assert 1 <= transport.polls[ingest.id] <= 8, transport.polls
    assert 1 <= transport.polls[search.id] <= 6, transport.polls


def test_async_quarry_uploads_a_folder_waits_and_searches(service, key, tmp_path):
    folder = write_folder(tmp_path)

    async def scenario() -> list[str]:
        async with AsyncQuarry(service.base_url, key) as quarry:
            await quarry.upload_and_wait("notes", [folder], timeout=120)
            answers = await asyncio.gather(
                quarry.search_and_wait("notes", "the knight moves in an L", top_k=1),
                quarry.search_and_wait("notes", "lava and ash", top_k=1),
            )
            listed = [job.type async for job in quarry.jobs.list()]
        assert sorted(listed) == ["ingest", "search", "search"]
        return [answer.hits[0].document_id for answer in answers]

    assert asyncio.run(scenario()) == ["chess.md", "volcano.md"]


def quarry_command(service, key: str, *args: str, timeout: float = 120) -> subprocess.CompletedProcess:
    env = {**os.environ, "QUARRY_URL": service.base_url, "QUARRY_API_KEY": key, "COLUMNS": "200"}
    return subprocess.run([str(BIN / "quarry"), *args], env=env, capture_output=True, text=True, timeout=timeout)


def test_quarry_upload_of_a_folder_with_a_bad_file_ingests_the_rest_names_it_and_exits_1(service, key, tmp_path):
    folder = write_folder(tmp_path)
    (folder / "latin1.txt").write_bytes(b"Caf\xe9 cr\xe8me br\xfbl\xe9e")  # not UTF-8: fails alone

    uploaded = quarry_command(service, key, "upload", "notes", str(folder))
    assert uploaded.returncode == 1, uploaded
    assert "Ingested 6 document(s)" in uploaded.stdout
    assert "latin1.txt" in uploaded.stdout and "UTF-8" in uploaded.stdout
    assert "skipped" in uploaded.stderr and "photo.png" in uploaded.stderr
    assert "Traceback" not in uploaded.stderr

    found = quarry_command(service, key, "search", "notes", "improvised solos", "--top-k", "2")
    assert found.returncode == 0, found
    first_row = next(line for line in found.stdout.splitlines() if line.strip("│ ").startswith("1 "))
    assert "jazz.md" in first_row, found.stdout

    as_json = json.loads(quarry_command(service, key, "search", "notes", "bread and yeast", "--json").stdout)
    assert as_json["hits"][0]["document_id"] == "bread.md"
    jobs = json.loads(quarry_command(service, key, "jobs", "list", "--json").stdout)
    assert {job["type"] for job in jobs} == {"ingest", "search"}


def test_quarry_errors_print_the_problem_and_its_request_id_and_exit_1(service, key):
    missing = quarry_command(service, key, "collections", "show", "nothing-here")
    assert missing.returncode == 1
    assert "not_found" in missing.stderr and "request" in missing.stderr and "Traceback" not in missing.stderr
    unreachable = subprocess.run(
        [str(BIN / "quarry"), "--url", "http://127.0.0.1:9", "collections", "list"],
        env={**os.environ, "QUARRY_API_KEY": key},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert unreachable.returncode == 4 and "Traceback" not in unreachable.stderr


def test_quarry_listen_prints_a_verified_ping_and_removes_its_endpoint_on_exit(service, key):
    env = {**os.environ, "QUARRY_URL": service.base_url, "QUARRY_API_KEY": key, "PYTHONUNBUFFERED": "1"}
    listener = subprocess.Popen(
        [str(BIN / "quarry"), "listen", "--print", "--json"],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    lines: list[dict] = []
    reader = threading.Thread(target=lambda: lines.extend(json.loads(line) for line in listener.stdout))
    reader.start()
    try:
        with Quarry(service.base_url, key) as quarry:
            wait_until(lambda: lines, 60, what="a delivery to quarry listen")
            assert lines[0]["verified"] and lines[0]["event"]["type"] == "ping"
            assert [w.description for w in quarry.webhooks.list()] == ["quarry listen (temporary)"]
            listener.send_signal(signal.SIGINT)
            assert listener.wait(timeout=30) == 0
            assert list(quarry.webhooks.list()) == []
    finally:
        listener.kill()
        reader.join(timeout=5)
    assert "Deleted the endpoint" in listener.stderr.read()


def test_the_client_package_needs_neither_flask_nor_celery(tmp_path):
    """Installed alone into a new virtualenv, it imports and runs."""
    client_dir = Path(__file__).resolve().parents[2] / "client"
    declared = tomllib.loads((client_dir / "pyproject.toml").read_text())["project"]["dependencies"]
    assert not [d for d in declared if d.lower().startswith(("flask", "celery"))]
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    subprocess.run(
        [str(venv / "bin" / "pip"), "install", "--quiet", "--disable-pip-version-check", str(client_dir)],
        check=True,
        timeout=300,
    )
    installed = subprocess.run(
        [str(venv / "bin" / "pip"), "list", "--format=json"], capture_output=True, text=True, check=True
    )
    names = {p["name"].lower() for p in json.loads(installed.stdout)}
    assert "quarry-client" in names and not names & {"flask", "celery", "torch", "sqlalchemy"}
    imported = subprocess.run(
        [str(venv / "bin" / "python"), "-c", "import quarry_client, quarry_client.cli; print(quarry_client.Quarry)"],
        capture_output=True,
        text=True,
    )
    assert imported.returncode == 0 and "Quarry" in imported.stdout, imported.stderr
    assert subprocess.run([str(venv / "bin" / "quarry"), "--help"], capture_output=True).returncode == 0


def readme_blocks(heading: str, language: str) -> list[str]:
    """The code blocks of one README section, in order."""
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    section = readme.split(f"\n{heading}\n", 1)[1].split("\n## ", 1)[0]
    return [block.split("\n```", 1)[0] for block in section.split(f"```{language}\n")[1:]]


def test_the_readmes_python_async_and_command_line_sections_run_as_written(service, key, tmp_path):
    # What the walk-through's first steps leave in the folder.
    (tmp_path / "lava.txt").write_text("Volcanoes erupt molten rock called lava.\n")
    (tmp_path / "knots.md").write_text("# Knots\nA bowline makes a fixed loop at the end of a rope.\n")
    (tmp_path / "my-notes").mkdir()
    (tmp_path / "my-notes" / "tides.md").write_text("Tides rise and fall with the pull of the moon.\n")
    env = {
        **os.environ,
        "QUARRY_URL": service.base_url,
        "QUARRY_API_KEY": key,
        "PATH": f"{BIN}:{os.environ['PATH']}",
        "PYTHONUNBUFFERED": "1",
    }

    def run(*args: str) -> str:
        done = subprocess.run(args, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=180)
        assert done.returncode == 0 and "Traceback" not in done.stderr, done
        return done.stdout

    [python] = readme_blocks("## Python", "python")
    printed = run(sys.executable, "-c", python)
    assert "documents=2" in printed and "knots.md" in printed.splitlines()[1]
    [async_python] = readme_blocks("## Async Python", "python")
    assert run(sys.executable, "-c", async_python).splitlines() == ["lava -> lava.txt", "rope knots -> knots.md"]

    commands, listen_command = readme_blocks("## Command line", "sh")
    printed = run("bash", "-e", "-c", commands)
    assert "Ingested 1 document(s)" in printed
    assert '"document_id": "lava.txt"' in printed

    listener = subprocess.Popen(
        ["bash", "-c", f"exec {listen_command}"], cwd=tmp_path, env=env, stdout=subprocess.PIPE, text=True
    )
    watchdog = threading.Timer(60, listener.kill)  # a listener that never prints ping ends the read
    watchdog.start()
    try:
        assert any("ping" in line and "verified" in line for line in _lines_until_ping(listener))
        listener.send_signal(signal.SIGINT)
        assert listener.wait(timeout=30) == 0
    finally:
        watchdog.cancel()
        listener.kill()


def _lines_until_ping(process: subprocess.Popen) -> list[str]:
    lines: list[str] = []
    for line in process.stdout:
        lines.append(line)
        if "ping" in line:
            break
    return lines
