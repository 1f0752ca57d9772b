"""The in-process baseline: the service's search core (app.search.*) called
directly, with no HTTP, SQL, Redis or Celery in between, on the same corpus,
settings and queries. It runs in a fresh process after the service has
stopped (`python -m bench.baseline`, started by run_process), so neither
path's memory or warm caches help the other."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from app.search.chunking import chunk_text
from app.search.embedding import Embedder
from bench.common import TOP_K, settings
from bench.dataset import document_ranking, document_text, load_scifact
from bench.measure import ROOT, latency_stats, memory_kb


def run_process(options: dict, workdir: Path) -> dict:
    """Run the baseline in a child process; what it measured."""
    out = workdir / "baseline.json"
    args = [str(out), str(options["dataset"]), str(options["docs"]), str(options["queries"])]
    env = {**os.environ, "QUARRY_VAR_DIR": str(workdir / "baseline-var")}
    subprocess.run([sys.executable, "-m", "bench.baseline", *args], check=True, cwd=ROOT, env=env)
    return json.loads(out.read_text())


def measure(dataset: Path, docs: int | None, queries: int | None) -> dict:
    import torch  # here: the driver process never loads torch

    data = load_scifact(dataset, docs, queries)
    embedder = Embedder(settings.embedding_model, settings.embed_batch_size)
    index, owners, ingest = build_index(embedder, data.documents)

    def search(text: str) -> list[str]:
        return document_ranking([owners[i] for i, _ in index.search(embedder.encode([text]), TOP_K)[0]])

    out = {"torch_threads": torch.get_num_threads(), "ingest": ingest}
    out["rankings"], out["sequential"] = time_queries(search, data.queries)
    torch.set_num_threads(1)  # what each service worker child gets
    out["sequential_1thread"] = time_queries(search, data.queries)[1]
    out["encode_ms_by_batch"] = encode_cost_by_batch(embedder, [text for _, text in data.queries])
    torch.set_num_threads(out["torch_threads"])
    # The upper bound: all queries in one batched encode and one FAISS call.
    started = time.perf_counter()
    index.search(embedder.encode([text for _, text in data.queries]), TOP_K)
    out["batched_qps"] = len(data.queries) / (time.perf_counter() - started)
    out["peak_rss_mb"] = memory_kb(os.getpid())["VmHWM"] / 1024
    return out


# Batch sizes whose encode cost is measured, and queries encoded at each.
ENCODE_BATCHES, ENCODE_QUERIES = (1, 2, 4, 8, 16), 48


def encode_cost_by_batch(embedder: Embedder, texts: list[str]) -> dict[int, float]:
    """CPU ms per query of the model's encode alone, by batch size, on this
    process's torch threads: what a worker's micro-batch of that size costs
    before anything else a search does."""
    texts = texts[:ENCODE_QUERIES]
    embedder.encode(texts[:1])
    costs = {}
    for size in ENCODE_BATCHES:
        started = time.process_time()
        for first in range(0, len(texts), size):
            embedder.encode(texts[first : first + size])
        costs[size] = (time.process_time() - started) * 1000 / len(texts)
    return costs


def build_index(embedder: Embedder, documents: list[dict]):
    """(FAISS index, each chunk's document id, timings): chunked with the
    service's token settings, all chunks embedded in one call."""
    from app.search.index_store import VectorIndex  # imports FAISS

    t0 = time.perf_counter()
    pieces = [(str(doc["_id"]), piece.text) for doc in documents
              for piece in chunk_text(document_text(doc), embedder.tokenizer, settings.chunk_tokens,
                                      settings.chunk_overlap_tokens)]  # fmt: skip
    t1 = time.perf_counter()
    vectors = embedder.encode([text for _, text in pieces])
    t2 = time.perf_counter()
    index = VectorIndex(embedder.dimension)
    index.add(np.arange(len(pieces), dtype="int64"), vectors)
    t3 = time.perf_counter()
    n = len(pieces)
    timings = {"documents": len(documents), "chunks": n, "chunk_s": t1 - t0, "embed_s": t2 - t1, "index_s": t3 - t2,
               "total_s": t3 - t0, "embed_chunks_per_s": n / (t2 - t1), "docs_per_s": len(documents) / (t3 - t0),
               "chunks_per_s": n / (t3 - t0)}  # fmt: skip
    return index, [owner for owner, _ in pieces], timings


def time_queries(search, queries: list[tuple[str, str]]) -> tuple[dict, dict]:
    """(ranking per query id, latency and throughput): one untimed search, then each query alone."""
    search(queries[0][1])
    rankings, latencies = {}, []
    started = time.perf_counter()
    for qid, text in queries:
        t = time.perf_counter()
        rankings[qid] = search(text)
        latencies.append((time.perf_counter() - t) * 1000)
    wall_s = time.perf_counter() - started
    return rankings, {"latency": latency_stats(latencies), "wall_s": wall_s, "qps": len(queries) / wall_s}


if __name__ == "__main__":
    out_path, dataset, docs, queries = sys.argv[1:5]
    to_int = lambda value: None if value == "None" else int(value)  # noqa: E731
    Path(out_path).write_text(json.dumps(measure(Path(dataset), to_int(docs), to_int(queries))))
