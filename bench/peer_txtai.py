"""The peer: txtai's API (https://neuml.github.io/txtai/api/) on the same
machine, with the same model directory and the same SciFact slice, driven
the way the service is: the corpus over HTTP, every query one at a time,
then every query from CLIENT_THREADS closed-loop clients.

txtai lives in a venv of its own, var/peer-txtai/, made on first use: the
CPU torch wheel goes in first, so pip never resolves a CUDA build. The API
runs with the Hugging Face libraries offline, so nothing downloads weights.
When txtai cannot be installed or started (no network, say), the phase is
skipped and the report says why.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path

import requests
import yaml

from app.config import settings
from app.search.embedding import resolve_model_path
from bench import client as driver
from bench.dataset import SciFact, document_text
from bench.parameters import CLIENT_THREADS, INGEST_BATCH, ROOT, TOP_K, WARMUP_QUERIES
from bench.system import MemorySampler
from bench.timing import latency_stats
from devstack.client import Client
from devstack.ports import free_port
from devstack.waiting import wait_until

TXTAI_VERSION = "9.14.0"
TORCH = "torch==2.13.0"  # the CPU wheel the Makefile installs into .venv
VENV = ROOT / "var" / "peer-txtai"
STARTUP_TIMEOUT = 300.0

Log = Callable[[str], None]


class PeerUnavailable(RuntimeError):
    """txtai could not be installed or started; the run goes on without it."""


def run_peer(data: SciFact, workdir: Path, ingest_timeout: float, log: Log) -> dict:
    """The peer's measurements (with "rankings" per query id), or
    {"skipped": why} when txtai could not be installed or started."""
    try:
        python = install(log)
        with txtai_api(python, workdir, log) as (url, pid):
            sampler = MemorySampler({"txtai": pid}).start()
            try:
                out = measure_peer(url, data, ingest_timeout, log)
            finally:
                memory = sampler.stop()["txtai"]
    except PeerUnavailable as exc:
        log(f"peer skipped: {exc}")
        return {"skipped": str(exc)}
    return {**out, "txtai_version": TXTAI_VERSION, "memory": memory}


# --- the venv -------------------------------------------------------------------------


def install(log: Log) -> Path:
    """var/peer-txtai/bin/python with txtai's API installed (once)."""
    python = VENV / "bin" / "python"
    stamp = VENV / f".installed-txtai-{TXTAI_VERSION}"
    if stamp.exists():
        return python
    log(f"installing txtai {TXTAI_VERSION} into {VENV} (first run only)")
    if not python.exists():
        _run([sys.executable, "-m", "venv", str(VENV)], "python -m venv")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--retries", "2"]
    _run([*pip, TORCH], f"pip install {TORCH}")
    # torch named again so the resolver keeps the CPU build it has.
    _run([*pip, TORCH, f"txtai[api]=={TXTAI_VERSION}", "uvicorn"], f"pip install txtai[api]=={TXTAI_VERSION}")
    listed = _run([str(python), "-m", "pip", "list", "--format=freeze"], "pip list")
    cuda = [line.split("==")[0] for line in listed.splitlines() if line.lower().startswith("nvidia-")]
    if cuda:
        shutil.rmtree(VENV, ignore_errors=True)
        raise PeerUnavailable(f"installing txtai pulled in a CUDA torch build ({', '.join(cuda)}); venv removed")
    stamp.touch()
    return python


def _run(command: list[str], what: str) -> str:
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        tail = " | ".join((done.stderr or done.stdout).strip().splitlines()[-3:])
        raise PeerUnavailable(f"{what} failed (exit {done.returncode}): {tail}")
    return done.stdout


# --- the API process ------------------------------------------------------------------


def api_config() -> dict:
    """The API's config: one writable embeddings index on the model
    directory the service uses, storing the text too (`content`) as a search
    service does. No top-level `path`: the index stays in memory, never saved."""
    model = resolve_model_path(settings.embedding_model)
    return {"writable": True, "embeddings": {"path": str(model), "content": True}}


@contextmanager
def txtai_api(python: Path, workdir: Path, log: Log) -> Iterator[tuple[str, int]]:
    """`uvicorn txtai.api:app` (one process, txtai's defaults) on a free port
    in a process group of its own; (its URL, its pid), stopped on the way out."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    config.write_text(yaml.safe_dump(api_config()))
    port = free_port()
    env = {
        **os.environ,
        "CONFIG": str(config),
        "HF_HUB_OFFLINE": "1",
        "TRANSFORMERS_OFFLINE": "1",
        "HF_HOME": str(workdir / "hf-home"),
    }
    logfile = workdir / "txtai.log"
    command = [str(python), "-m", "uvicorn", "txtai.api:app", "--host", "127.0.0.1", "--port", str(port)]
    with logfile.open("ab") as output:
        process = subprocess.Popen(
            command, cwd=workdir, env=env, stdout=output, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        started = time.perf_counter()
        wait_for_api(process, url, logfile)
        log(f"txtai API up in {time.perf_counter() - started:.1f} s (pid {process.pid}, {url})")
        yield url, process.pid
    finally:
        stop(process)


def wait_for_api(process: subprocess.Popen, url: str, logfile: Path) -> None:
    """Until the API answers (it loads the model before it listens)."""

    def up_or_exited() -> bool:
        if process.poll() is not None:
            return True
        try:
            return requests.get(f"{url}/count", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False

    try:
        wait_until(up_or_exited, STARTUP_TIMEOUT, interval=0.5, what="txtai's API")
    except TimeoutError as exc:
        raise PeerUnavailable(f"{exc}; log: {_tail(logfile)}") from exc
    if process.poll() is not None:
        raise PeerUnavailable(f"txtai's API exited with {process.returncode}: {_tail(logfile)}")


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the API's process group, SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(grace)
            break
        except subprocess.TimeoutExpired:
            continue
    process.wait(5)


def _tail(logfile: Path, lines: int = 5) -> str:
    return " | ".join(logfile.read_text(errors="replace").strip().splitlines()[-lines:])


# --- measuring ------------------------------------------------------------------------


def measure_peer(url: str, data: SciFact, ingest_timeout: float, log: Log) -> dict:
    out: dict = {"ingest": ingest(url, data.documents, ingest_timeout)}
    ing = out["ingest"]
    log(f"txtai ingest: {ing['indexed']} docs in {ing['wall_s']:.1f} s ({ing['docs_per_s']:.1f} docs/s)")
    new_client = partial(Client, url)
    client = new_client()
    for _, text in data.queries[:WARMUP_QUERIES]:
        timed_search(client, text)

    started = time.perf_counter()
    sequential = driver.run_sequentially(client, data.queries, log, search=timed_search)
    out["sequential"] = summarize(sequential, time.perf_counter() - started)
    log_searches("txtai sequential", out["sequential"], log)

    started = time.perf_counter()
    concurrent = driver.run_concurrently(new_client, data.queries, CLIENT_THREADS, search=timed_search)
    out["concurrent"] = {**summarize(concurrent, time.perf_counter() - started), "clients": CLIENT_THREADS}
    log_searches(f"txtai concurrent x{CLIENT_THREADS}", out["concurrent"], log)
    out["rankings"] = {r["qid"]: r.get("doc_ids", []) for r in sequential}
    out["errors"] = [r["error"] for r in sequential + concurrent if r.get("error")]
    return out


def ingest(url: str, documents: list[dict], timeout: float) -> dict:
    """POST /add in requests of INGEST_BATCH documents, then GET /index,
    which embeds them all and builds the index."""
    session = requests.Session()
    started = time.perf_counter()
    for i in range(0, len(documents), INGEST_BATCH):
        batch = [{"id": str(d["_id"]), "text": document_text(d)} for d in documents[i : i + INGEST_BATCH]]
        session.post(f"{url}/add", json=batch, timeout=timeout).raise_for_status()
    add_s = time.perf_counter() - started
    session.get(f"{url}/index", timeout=timeout).raise_for_status()
    wall_s = time.perf_counter() - started
    return {
        "documents": len(documents),
        "indexed": session.get(f"{url}/count", timeout=30).json(),
        "batch": INGEST_BATCH,
        "add_s": add_s,
        "index_s": wall_s - add_s,
        "wall_s": wall_s,
        "docs_per_s": len(documents) / wall_s if wall_s else 0,
    }


def timed_search(client: Client, query: str) -> dict:
    """GET /search, timed as the client sees it."""
    started = time.perf_counter()
    response = client.get("/search", params={"query": query, "limit": TOP_K})
    latency_ms = (time.perf_counter() - started) * 1000
    if response.status_code != 200:
        return {"error": f"GET /search {response.status_code}: {response.text[:300]}", "latency_ms": None}
    return {"latency_ms": latency_ms, "doc_ids": [str(hit["id"]) for hit in response.json()]}


def summarize(results: list[dict], wall_s: float) -> dict:
    ok = [r["latency_ms"] for r in results if not r.get("error")]
    return {
        "wall_s": wall_s,
        "qps": len(ok) / wall_s if wall_s else 0,
        "latency": latency_stats(ok),
        "failed": len(results) - len(ok),
    }


def log_searches(name: str, summary: dict, log: Log) -> None:
    latency = summary["latency"]
    log(
        f"{name}: {latency['n']} ok, {summary['failed']} failed, {summary['qps']:.2f} q/s, "
        f"p50 {latency.get('p50', float('nan')):.1f} ms, p95 {latency.get('p95', float('nan')):.1f} ms"
    )
