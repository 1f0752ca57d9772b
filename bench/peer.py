"""The peer in the `all` suite: txtai's API with the same model directory and
SciFact slice, driven as the service is (the corpus over HTTP, every query
alone, then from as many clients). It lives in var/peer-txtai/, made on first
use with the CPU torch wheel first, so pip never resolves a CUDA build."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from functools import partial
from pathlib import Path

import requests
import yaml

from app.search.embedding import resolve_model_path
from bench.common import TOP_K, Log, settings
from bench.dataset import SciFact, document_text
from bench.measure import ROOT, MemorySampler, cpu_seconds, group_pids
from bench.service import run_concurrently, summarize_searches
from devstack.client import Client
from devstack.ports import free_port
from devstack.waiting import wait_until

TXTAI_VERSION = "9.14.0"
TORCH = "torch==2.13.0"  # the CPU wheel the Makefile installs into .venv
VENV = ROOT / "var" / "peer-txtai"
ADD_BATCH = 500
WARMUP_QUERIES = 50


def run(data: SciFact, workdir: Path, clients: int, log: Log) -> dict:
    """The peer's figures, with its rankings per query id."""
    python = install(log)
    workdir.mkdir(parents=True, exist_ok=True)
    config = workdir / "config.yml"
    # No top-level `path`: the index stays in memory and is never saved.
    config.write_text(yaml.safe_dump({"writable": True, "embeddings": {
        "path": str(resolve_model_path(settings.embedding_model)), "content": True}}))  # fmt: skip
    port = free_port()
    env = {**os.environ, "CONFIG": str(config), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1",
           "HF_HOME": str(workdir / "hf-home")}  # fmt: skip
    command = [str(python), "-m", "uvicorn", "txtai.api:app", "--host", "127.0.0.1", "--port", str(port)]
    with (workdir / "txtai.log").open("ab") as output:
        process = subprocess.Popen(command, cwd=workdir, env=env, stdout=output, stderr=output, start_new_session=True)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_until(lambda: process.poll() is not None or answers(url), 300, interval=0.5, what="txtai's API")
        if process.poll() is not None:
            raise RuntimeError(f"txtai's API exited {process.returncode}; see {workdir / 'txtai.log'}")
        sampler = MemorySampler({"txtai": process.pid})
        try:
            out = measure(url, data, clients, log, lambda: cpu_seconds(group_pids(process.pid)))
        finally:
            out_memory = sampler.stop()["txtai"]
    finally:
        stop(process)
    return {**out, "txtai_version": TXTAI_VERSION, "peak_rss_mb": out_memory["sum_hwm_mb"]}


def install(log: Log) -> Path:
    """var/peer-txtai/bin/python with txtai's API installed (once)."""
    python, stamp = VENV / "bin" / "python", VENV / f".installed-txtai-{TXTAI_VERSION}"
    if stamp.exists():
        return python
    log(f"installing txtai {TXTAI_VERSION} into {VENV} (first run only)")
    pip = [str(python), "-m", "pip", "install", "--quiet", "--retries", "2"]
    for command in (
        [sys.executable, "-m", "venv", str(VENV)],
        [*pip, TORCH],
        [*pip, TORCH, f"txtai[api]=={TXTAI_VERSION}", "uvicorn"],
    ):  # torch again: keep the CPU build
        subprocess.run(command, check=True, capture_output=True)  # fmt: skip
    listed = subprocess.run([str(python), "-m", "pip", "list"], capture_output=True, text=True).stdout
    if "nvidia-" in listed.lower():
        shutil.rmtree(VENV, ignore_errors=True)
        raise RuntimeError("installing txtai pulled in a CUDA torch build; venv removed")
    stamp.touch()
    return python


def answers(url: str) -> bool:
    try:
        return requests.get(f"{url}/count", timeout=2).status_code == 200
    except requests.ConnectionError:
        return False


def stop(process: subprocess.Popen) -> None:
    """SIGTERM to the API's process group, SIGKILL if it lingers."""
    for sig, grace in ((signal.SIGTERM, 20), (signal.SIGKILL, 10)):
        try:
            os.killpg(process.pid, sig)
            process.wait(grace)
            return
        except ProcessLookupError:
            return
        except subprocess.TimeoutExpired:
            continue


def measure(url: str, data: SciFact, clients: int, log: Log, server_cpu) -> dict:
    """Ingest (POST /add in batches, then GET /index, which embeds them all),
    then the searches; `server_cpu()`: the API's CPU seconds so far."""
    session, started = requests.Session(), time.perf_counter()
    for i in range(0, len(data.documents), ADD_BATCH):
        batch = [{"id": str(d["_id"]), "text": document_text(d)} for d in data.documents[i : i + ADD_BATCH]]
        session.post(f"{url}/add", json=batch, timeout=3600).raise_for_status()
    add_s = time.perf_counter() - started
    session.get(f"{url}/index", timeout=3600).raise_for_status()
    wall_s = time.perf_counter() - started
    out: dict = {"ingest": {"documents": len(data.documents), "indexed": session.get(f"{url}/count").json(),
                            "add_s": add_s, "index_s": wall_s - add_s, "docs_per_s": len(data.documents) / wall_s}}  # fmt: skip
    log(f"txtai ingest: {len(data.documents)} documents in {wall_s:.1f} s")
    new_client = partial(Client, url)
    for _, text in data.queries[:WARMUP_QUERIES]:
        timed_search(new_client(), text)
    for phase, threads in (("sequential", 1), ("concurrent", clients)):
        t0, cpu = time.perf_counter(), server_cpu()
        results = run_concurrently(new_client, data.queries, threads, timed_search)
        out[phase] = {**summarize_searches(results, time.perf_counter() - t0), "clients": threads}
        out[phase]["cpu_ms_per_search"] = 1000 * (server_cpu() - cpu) / max(1, len(results))
        if phase == "sequential":
            out["rankings"] = {r["qid"]: r.get("doc_ids", []) for r in results}
    return out


def timed_search(client: Client, query: str) -> dict:
    """GET /search, timed as its client sees it (txtai has no job: the whole request)."""
    started = time.perf_counter()
    response = client.get("/search", params={"query": query, "limit": TOP_K})
    if response.status_code != 200:
        return {"error": f"GET /search {response.status_code}: {response.text[:300]}"}
    return {
        "latency_ms": (time.perf_counter() - started) * 1000,
        "doc_ids": [str(hit["id"]) for hit in response.json()],
    }
