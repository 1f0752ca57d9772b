"""Retrieval quality on SciFact, measured two ways (`make eval`, bench/eval.py):

- through the service: the corpus ingested over HTTP, every test query sent
  as a single search job per healthy pipeline, each document once
  (`"collapse": "document"`);
- in process: the same search core (`app.search.*`) on the same chunks, with
  the service's per-document collapse redone here, no HTTP and no database.

Both are scored against the qrels: nDCG@10 and recall@100 by document.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

from app.config import settings
from app.search.chunking import chunk_text
from app.search.embedding import get_embedder
from app.search.index_store import CollectionIndex
from app.search.keyword_index import KeywordIndex
from app.search.pipelines import PIPELINES, Pipeline, SearchResources
from app.search.vector_index import VectorIndex
from app.services.jobs import JobStatus
from app.services.handlers.retrieval import COLLAPSE_OVERFETCH
from bench import client as driver
from bench.dataset import SciFact, document_ranking, document_text, ndcg_and_recall
from bench.parameters import COLLECTION, SEARCH_TIMEOUT, WORKER_CONCURRENCY
from bench.service import StackDied, check_alive, log_ingest, private_service
from devstack.client import Client

Log = Callable[[str], None]

# Documents per query: recall@100 needs a ranking of 100.
TOP_K = 100
NDCG_AT, RECALL_AT = 10, 100
# Client threads sending single search jobs: enough to keep both worker
# children busy while each thread waits on its poll.
SEARCH_THREADS = 4
# Chunks embedded per call in process: only so the log shows progress.
EMBED_SLICE = 1024

# What the service must reach (nDCG@10, through the HTTP API), from the
# issue, and what we aim for.
TARGETS = {"dense": 0.645, "keyword": 0.66, "hybrid": 0.68}
AIM = 0.70
# Published nDCG@10 on BEIR SciFact: (system, source, the pipeline it compares with, figure).
PUBLISHED = [
    ("BM25 (Elasticsearch)", "BEIR paper, Thakur et al. 2021", "keyword", 0.665),
    ("all-MiniLM-L6-v2", "SBERT model card / MTEB", "dense", 0.645),
]


# --- through the service ------------------------------------------------------------


def service_with_retries(data: SciFact, workdir: Path, ingest_timeout: float, attempts: int, log: Log) -> dict:
    """The service phase, started over from scratch if something outside the
    run kills its processes (other people's tooling shares this machine)."""
    for attempt in range(1, attempts + 1):
        try:
            return service_rankings(data, workdir / f"service-{attempt}", ingest_timeout, log)
        except StackDied as exc:
            log(f"service phase interrupted: {exc}")
            if attempt == attempts:
                raise
    raise ValueError(f"attempts must be at least 1, not {attempts}")


def service_rankings(data: SciFact, workdir: Path, ingest_timeout: float, log: Log) -> dict:
    """Ingest the corpus, then every query once per healthy pipeline; the
    stack is stopped on the way out."""
    with private_service(workdir) as (stack, api_key):
        stack.start_web()
        stack.start_worker(concurrency=WORKER_CONCURRENCY)
        driver.warm_up_worker(stack)
        warm_up_searches(lambda: stack.client(api_key))
        log(f"service up: gunicorn + 1 Celery worker (concurrency {WORKER_CONCURRENCY}), model and code loaded")
        ingest = driver.ingest_corpus(stack, data.documents, ingest_timeout, lambda: check_alive(stack))
        log_ingest(ingest, log)
        collection = stack.get(f"/api/v1/collections/{COLLECTION}").json()
        listed = stack.get("/api/v1/pipelines").json()
        healthy = [p["name"] for p in listed if p["status"] == "healthy"]
        skipped = {p["name"]: p.get("reason") or p["status"] for p in listed if p["status"] != "healthy"}
        log(f"pipelines: evaluating {', '.join(healthy)}; skipping {skipped or 'none'}")
        rankings, errors, seconds = {}, {}, {}
        for name in healthy:
            started = time.perf_counter()
            rankings[name], errors[name] = run_searches(lambda: stack.client(api_key), name, data.queries)
            seconds[name] = time.perf_counter() - started
            check_alive(stack)
            log(f"service {name}: {len(data.queries)} searches in {seconds[name]:.1f} s, "
                f"{len(errors[name])} failed")
            if errors[name] and len(errors[name]) == len(data.queries):
                # Nothing to score; the rest of the run (tens of minutes) would be wasted.
                raise RuntimeError(f"every {name} search failed, e.g. {errors[name][0]}")
    return {
        "ingest": {k: ingest[k] for k in ("requests", "batch", "documents", "chunks", "wall_s", "statuses",
                                          "skipped_duplicates", "failed_documents", "errors")},
        "collection": collection,
        "pipelines": healthy,
        "skipped": skipped,
        "rankings": rankings,
        "errors": errors,
        "search_s": seconds,
    }


def warm_up_searches(new_client: Callable[[], Client]) -> None:
    """A few searches, at once, before the long ingest. A worker child imports
    the search code at its first search: if people edit app/ during the run
    (they do, on this shared machine), a child that imports it only after
    the ingest mixes old and new modules (seen: every search failed).
    Distinct queries, so the service's result cache cannot answer any of
    them without a worker child."""

    def one(n: int) -> list[str]:
        # "warmup": the collection driver.warm_up_worker ingested into.
        return search_documents(new_client(), "hybrid", f"warm-up query {n}", collection="warmup")

    with ThreadPoolExecutor(2 * WORKER_CONCURRENCY) as pool:
        list(pool.map(one, range(2 * WORKER_CONCURRENCY)))


def run_searches(new_client: Callable[[], Client], pipeline: str,
                 queries: list[tuple[str, str]]) -> tuple[dict[str, list[str]], list[str]]:
    """Every query as a single search job, from SEARCH_THREADS client threads
    (one HTTP session each). A failed search ranks nothing (scores 0) and is
    reported."""
    local = threading.local()

    def one(item: tuple[str, str]) -> tuple[str, list[str], str | None]:
        qid, text = item
        if not hasattr(local, "client"):
            local.client = new_client()
        try:
            return qid, search_documents(local.client, pipeline, text), None
        except Exception as exc:  # noqa: BLE001 - reported with the figures, not raised
            return qid, [], f"query {qid}: {type(exc).__name__}: {exc}"

    with ThreadPoolExecutor(SEARCH_THREADS) as pool:
        results = list(pool.map(one, queries))
    return {qid: ranked for qid, ranked, _ in results}, [error for *_, error in results if error]


def search_documents(client: Client, pipeline: str, query: str, collection: str = COLLECTION) -> list[str]:
    """The document ids of one search job's hits, best first."""
    body = {"query": query, "top_k": TOP_K, "pipeline": pipeline, "collapse": "document"}
    response = client.post(f"/api/v1/collections/{collection}/search", json=body)
    if response.status_code != 202:
        raise RuntimeError(f"POST answered {response.status_code}: {response.text[:300]}")
    job = client.wait_job(response.json()["id"], timeout=SEARCH_TIMEOUT)
    if job["status"] != JobStatus.SUCCEEDED:
        raise RuntimeError(f"job {job['id']} {job['status']}: {job['error']}")
    return [hit["document_id"] for hit in job["result"]["hits"]]


# --- in process ----------------------------------------------------------------------


def inprocess_rankings(data: SciFact, pipelines: list[str], log: Log) -> dict:
    """The same pipelines over an index built here from the same chunks;
    each query searched alone, as a single search job is."""
    embedder = get_embedder(settings.embedding_model, settings.embed_batch_size)
    texts, owners = chunk_corpus(data.documents, embedder.tokenizer)
    # Chunk id i is texts[i - 1]; like the service's row ids they start at 1.
    ids = np.arange(1, len(texts) + 1, dtype="int64")
    started = time.perf_counter()
    vectors = embed(embedder, texts, log)
    embed_s = time.perf_counter() - started
    index = CollectionIndex(
        generation=1, vectors=VectorIndex.create(embedder.dimension, "flat"), keywords=KeywordIndex.build(ids, texts)
    )
    index.vectors.add(ids, vectors)
    resources = SearchResources(
        encoder=embedder, chunk_texts=lambda wanted: {int(i): texts[int(i) - 1] for i in wanted}, settings=settings
    )
    document_of = dict(zip(ids.tolist(), owners))
    rankings, seconds = {}, {}
    for name in pipelines:
        started = time.perf_counter()
        pipeline = PIPELINES[name](resources)
        rankings[name] = {qid: collapsed_search(pipeline, index, text, document_of) for qid, text in data.queries}
        seconds[name] = time.perf_counter() - started
        log(f"in-process {name}: {len(data.queries)} searches in {seconds[name]:.1f} s")
    return {"chunks": len(texts), "embed_s": embed_s, "rankings": rankings, "search_s": seconds}


def chunk_corpus(documents: list[dict], tokenizer) -> tuple[list[str], list[str]]:
    """(chunk texts, each chunk's document id), chunked as the worker does."""
    texts, owners = [], []
    for doc in documents:
        for piece in chunk_text(document_text(doc), tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens):
            texts.append(piece.text)
            owners.append(str(doc["_id"]))
    return texts, owners


def embed(embedder, texts: list[str], log: Log) -> np.ndarray:
    parts = []
    for start in range(0, len(texts), EMBED_SLICE):
        parts.append(embedder.encode(texts[start : start + EMBED_SLICE]))
        log(f"  embedded {min(start + EMBED_SLICE, len(texts))}/{len(texts)} chunks")
    return np.vstack(parts) if parts else np.zeros((0, embedder.dimension), dtype="float32")


def collapsed_search(pipeline: Pipeline, index: CollectionIndex, query: str, document_of: dict[int, str]) -> list[str]:
    """The query's TOP_K documents, each at its best chunk's rank, the way the
    service collapses (app/services/retrieval.py): ask for TOP_K x 4 chunks,
    and again for 4 times as many while a full ranking still holds fewer
    than TOP_K documents."""
    most = max(index.vectors.size, index.keywords.size)
    depth = TOP_K * COLLAPSE_OVERFETCH
    while True:
        ranking = pipeline.search(index, [query], depth, None)[0]
        documents = document_ranking([document_of[chunk_id] for chunk_id, _ in ranking])[:TOP_K]
        if len(documents) >= TOP_K or len(ranking) < depth or depth >= most:
            return documents
        depth *= COLLAPSE_OVERFETCH


# --- scoring --------------------------------------------------------------------------


def score(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict:
    """Mean nDCG@10 and recall@100 over the judged queries; a query without a
    ranking scores 0. ndcg_and_recall computes both at one cut-off, so it is
    called once per cut-off."""
    n = len(qrels)
    ndcg = [ndcg_and_recall(rankings.get(qid, []), rels, NDCG_AT)[0] for qid, rels in qrels.items()]
    recall = [ndcg_and_recall(rankings.get(qid, []), rels, RECALL_AT)[1] for qid, rels in qrels.items()]
    return {
        "queries": n,
        "ndcg@10": sum(ndcg) / n if n else float("nan"),
        "recall@100": sum(recall) / n if n else float("nan"),
        "per_query_ndcg@10": dict(zip(qrels, ndcg)),
    }


def agreement(service: dict[str, list[str]], inprocess: dict[str, list[str]], qrels: dict) -> dict:
    """How often the two paths returned the very same documents."""
    return {
        "same_top10": sum(1 for qid in qrels if service.get(qid, [])[:10] == inprocess.get(qid, [])[:10]),
        "same_top100": sum(1 for qid in qrels if service.get(qid) == inprocess.get(qid)),
        "repeated_documents": sum(1 for ranked in service.values() if len(set(ranked)) != len(ranked)),
        "queries": len(qrels),
    }
