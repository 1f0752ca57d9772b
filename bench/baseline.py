"""The in-process baseline: the service's search core (app.search.*) called
directly, with no HTTP, SQL, Redis or Celery in between. It chunks, embeds
and indexes the same corpus with the same settings and runs the same
queries, one at a time.

It runs in a fresh process (`run.py --baseline OUT`) after the service has
stopped, so neither path's memory or warm caches help the other.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from app.config import settings
from app.search.chunking import chunk_text
from app.search.embedding import Embedder
from bench.dataset import document_ranking, document_text, load_scifact
from bench.parameters import ROOT, TOP_K
from bench.system import memory_kb
from bench.timing import latency_stats


def run_baseline_process(dataset: Path, n_docs: int | None, n_queries: int | None, workdir: Path) -> dict:
    """Run the baseline in a child process and return what it measured."""
    out_path = workdir / "baseline.json"
    command = [sys.executable, str(ROOT / "bench" / "run.py"), "--baseline", str(out_path), "--dataset", str(dataset)]
    if n_docs is not None:
        command += ["--docs", str(n_docs)]
    if n_queries is not None:
        command += ["--queries", str(n_queries)]
    env = {**os.environ, "QUARRY_VAR_DIR": str(workdir / "baseline-var")}
    subprocess.run(command, check=True, cwd=ROOT, env=env)
    return json.loads(out_path.read_text())


def measure_baseline(dataset: Path, n_docs: int | None, n_queries: int | None, out_path: Path) -> None:
    """The body of `run.py --baseline`: writes its measurements to `out_path`."""
    import torch  # here, not at the top: the driver process never loads torch or FAISS

    data = load_scifact(dataset, n_docs, n_queries)
    out: dict = {"torch_threads": torch.get_num_threads()}
    started = time.perf_counter()
    embedder = Embedder(settings.embedding_model, settings.embed_batch_size)
    out["model_load_s"] = time.perf_counter() - started
    out["rss_after_model_mb"] = memory_kb(os.getpid())["VmRSS"] / 1024

    index, chunk_owners, out["ingest"] = build_index(embedder, data.documents)

    def search(text: str) -> list[str]:
        hits = index.search(embedder.encode([text]), TOP_K)[0]
        return document_ranking([chunk_owners[i] for i, _ in hits])

    out["rankings"], out["sequential"] = time_queries(search, data.queries)
    # The same with one torch thread: what each service worker child gets.
    torch.set_num_threads(1)
    out["sequential_1thread"] = time_queries(search, data.queries)[1]
    torch.set_num_threads(out["torch_threads"])

    # Upper bound: all queries in one batched encode and one FAISS search.
    started = time.perf_counter()
    index.search(embedder.encode([text for _, text in data.queries]), TOP_K)
    batch_s = time.perf_counter() - started
    out["batched_qps"] = len(data.queries) / batch_s if batch_s else 0

    memory = memory_kb(os.getpid())
    out["memory"] = {"peak_rss_mb": memory["VmHWM"] / 1024, "final_rss_mb": memory["VmRSS"] / 1024}
    out_path.write_text(json.dumps(out))


def build_index(embedder: Embedder, documents: list[dict]):
    """(FAISS index, the document id of each chunk, timings): chunking with
    the service's token settings, embedding all chunks in one call."""
    from app.search.index_store import VectorIndex  # imports FAISS

    started = time.perf_counter()
    texts, owners = [], []
    for doc in documents:
        for piece in chunk_text(
            document_text(doc), embedder.tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens
        ):
            texts.append(piece.text)
            owners.append(str(doc["_id"]))
    chunk_s = time.perf_counter() - started
    t = time.perf_counter()
    vectors = embedder.encode(texts)
    embed_s = time.perf_counter() - t
    t = time.perf_counter()
    index = VectorIndex(embedder.dimension)
    index.add(np.arange(len(texts), dtype="int64"), vectors)
    index_s = time.perf_counter() - t
    total_s = time.perf_counter() - started
    timings = {
        "documents": len(documents),
        "chunks": len(texts),
        "chunk_s": chunk_s,
        "embed_s": embed_s,
        "index_s": index_s,
        "total_s": total_s,
        "embed_chunks_per_s": len(texts) / embed_s if embed_s else 0,
        "docs_per_s": len(documents) / total_s if total_s else 0,
        "chunks_per_s": len(texts) / total_s if total_s else 0,
    }
    return index, owners, timings


def time_queries(search: Callable[[str], list[str]], queries: list[tuple[str, str]]) -> tuple[dict, dict]:
    """(ranking per query id, latency and throughput): one untimed warm-up
    search, then every query one at a time."""
    search(queries[0][1])
    rankings, latencies = {}, []
    started = time.perf_counter()
    for qid, text in queries:
        t = time.perf_counter()
        rankings[qid] = search(text)
        latencies.append((time.perf_counter() - t) * 1000)
    wall_s = time.perf_counter() - started
    return rankings, {"latency": latency_stats(latencies), "wall_s": wall_s, "qps": len(queries) / wall_s}
