"""The `eval` suite: retrieval quality per pipeline on SciFact, two ways:
through the service (the corpus ingested over HTTP, every test query one
search job per healthy pipeline, `"collapse": "document"`), and in process
(the same search core on the same chunks, the service's per-document
collapse redone here). Both scored against the qrels: nDCG@10 and
recall@100 by document. Nothing is tuned on the queries."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np

from app.search.chunking import chunk_text
from app.search.embedding import get_embedder
from app.search.index_store import CollectionIndex
from app.search.keyword_index import KeywordIndex
from app.search.pipelines import PIPELINES, Pipeline, SearchResources
from app.search.pipelines.hybrid import FIRST_STAGE_DEPTH, RRF_K
from app.search.vector_index import VectorIndex
from app.services.handlers.retrieval import COLLAPSE_OVERFETCH
from bench import service
from bench.common import WORKER_CONCURRENCY, Log, settings
from bench.dataset import SciFact, document_ranking, document_text, load_scifact, ndcg_and_recall

DEPTH = 100  # documents per query: recall@100 needs a ranking of 100
INGEST_BATCH = 500
# Enough client threads to keep both worker children busy while each waits on its poll.
SEARCH_THREADS = 4


def run(options: dict, log: Log) -> dict:
    data, ingest_timeout = (
        load_scifact(options["dataset"], options["docs"], options["queries"]),
        options["ingest_timeout"],
    )
    with tempfile.TemporaryDirectory(prefix="quarry-eval-") as workdir:
        from_service = service.with_retries(
            lambda n: service_rankings(data, Path(workdir) / str(n), ingest_timeout, log), 3, log
        )
    inprocess = inprocess_rankings(data, from_service["pipelines"], log)
    pipelines = {}
    for name in from_service["pipelines"]:
        ours, theirs = from_service["rankings"].pop(name), inprocess["rankings"].pop(name)
        scores = {"service": score(ours, data.qrels), "inprocess": score(theirs, data.qrels)}
        differences = [abs(a - b) for a, b in zip(*(s.pop("per_query").values() for s in scores.values()))]
        pipelines[name] = {**scores, **agreement(ours, theirs, data.qrels), "failed": len(from_service["errors"][name]),
                           "queries_scoring_differently": sum(d > 1e-9 for d in differences),
                           "largest_difference": max(differences, default=0.0)}  # fmt: skip
    del from_service["rankings"], inprocess["rankings"]
    return {"documents": len(data.documents), "corpus_documents": data.corpus_documents, "queries": len(data.queries),
            "judged_queries": data.judged_queries, "service": from_service, "inprocess": inprocess, "pipelines": pipelines,
            "rrf_k": RRF_K, "first_stage_depth": FIRST_STAGE_DEPTH, "depth": DEPTH}  # fmt: skip


def service_rankings(data: SciFact, workdir: Path, ingest_timeout: float, log: Log) -> dict:
    """Ingest the corpus, then every query once per healthy pipeline."""
    with service.private_service(workdir) as (stack, api_key):
        stack.start_web()
        stack.start_worker(concurrency=WORKER_CONCURRENCY)
        service.warm_up_worker(stack)
        ingest = service.ingest_corpus(
            stack, "scifact", data.documents, INGEST_BATCH, ingest_timeout, lambda: service.check_alive(stack)
        )
        chunks = stack.get("/api/v1/collections/scifact").json()["chunks"]
        listed = stack.get("/api/v1/pipelines").json()
        out = {"ingest": ingest, "chunks": chunks, "rankings": {}, "errors": {},
               "pipelines": [p["name"] for p in listed if p["status"] == "healthy"],
               "unavailable": {p["name"]: p.get("reason") or p["status"] for p in listed if p["status"] != "healthy"}}  # fmt: skip
        for name in out["pipelines"]:
            started = time.perf_counter()
            out["rankings"][name], out["errors"][name] = search_all(lambda: stack.client(api_key), name, data.queries)
            service.check_alive(stack)
            log(f"service {name}: {time.perf_counter() - started:.1f} s, {len(out['errors'][name])} failed")
            if len(out["errors"][name]) == len(data.queries):  # nothing to score: stop before wasting the run
                raise RuntimeError(f"every {name} search failed, e.g. {out['errors'][name][0]}")
    return out


def search_all(new_client, pipeline: str, queries: list[tuple[str, str]]) -> tuple[dict, list[str]]:
    """Every query as one search job, from SEARCH_THREADS clients; a failed
    search ranks nothing (scores 0) and is counted."""

    def search(client, query: str) -> dict:
        body = {"query": query, "top_k": DEPTH, "pipeline": pipeline, "collapse": "document"}
        return service.timed_search(client, "scifact", body)

    results = service.run_concurrently(new_client, queries, SEARCH_THREADS, search)
    rankings = {r["qid"]: [hit["document_id"] for hit in r.get("hits", [])] for r in results}
    return rankings, [f"{r['qid']}: {r['error']}" for r in results if "error" in r]


def inprocess_rankings(data: SciFact, pipelines: list[str], log: Log) -> dict:
    """The same pipelines over an index built here from the same chunks, each query alone."""
    embedder = get_embedder(settings.embedding_model, settings.embed_batch_size)
    texts, owners = [], []
    for doc in data.documents:
        for piece in chunk_text(
            document_text(doc), embedder.tokenizer, settings.chunk_tokens, settings.chunk_overlap_tokens
        ):
            texts.append(piece.text)
            owners.append(str(doc["_id"]))
    ids = np.arange(1, len(texts) + 1, dtype="int64")  # like the service's row ids, from 1
    index = CollectionIndex(generation=1, vectors=VectorIndex.create(embedder.dimension, "flat"),
                            keywords=KeywordIndex.build(ids, texts))  # fmt: skip
    index.vectors.add(ids, embedder.encode(texts))
    resources = SearchResources(encoder=embedder, settings=settings,
                                chunk_texts=lambda wanted: {int(i): texts[int(i) - 1] for i in wanted})  # fmt: skip
    document_of = dict(zip(ids.tolist(), owners))
    rankings = {}
    for name in pipelines:
        pipeline = PIPELINES[name](resources)
        rankings[name] = {qid: collapsed_search(pipeline, index, text, document_of) for qid, text in data.queries}
        log(f"in-process {name} done")
    return {"chunks": len(texts), "rankings": rankings}


def collapsed_search(pipeline: Pipeline, index: CollectionIndex, query: str, document_of: dict[int, str]) -> list[str]:
    """DEPTH documents, each at its best chunk's rank, collapsed as the
    service does (app/services/handlers/retrieval.py): ask for DEPTH x 4 chunks, and
    4 times as many again while a full ranking holds fewer than DEPTH documents."""
    most, depth = max(index.vectors.size, index.keywords.size), DEPTH * COLLAPSE_OVERFETCH
    while True:
        ranking = pipeline.search(index, [query], depth, None)[0]
        documents = document_ranking([document_of[chunk_id] for chunk_id, _ in ranking])[:DEPTH]
        if len(documents) >= DEPTH or len(ranking) < depth or depth >= most:
            return documents
        depth *= COLLAPSE_OVERFETCH


def score(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict:
    """Mean nDCG@10 and recall@100 over the judged queries (a missing ranking scores 0)."""
    ndcg = {qid: ndcg_and_recall(rankings.get(qid, []), rels, 10)[0] for qid, rels in qrels.items()}
    recall = [ndcg_and_recall(rankings.get(qid, []), rels, DEPTH)[1] for qid, rels in qrels.items()]
    return {"ndcg@10": float(np.mean(list(ndcg.values()))), "recall@100": float(np.mean(recall)), "per_query": ndcg}


def agreement(ours: dict, theirs: dict, qrels: dict) -> dict:
    """How often the service (ours) and the in-process path (theirs) returned the very same documents."""
    return {
        "same_top10": sum(ours.get(q, [])[:10] == theirs.get(q, [])[:10] for q in qrels),
        "same_top100": sum(ours.get(q) == theirs.get(q) for q in qrels),
        "repeated_documents": sum(len(set(ranked)) != len(ranked) for ranked in ours.values()),
    }
