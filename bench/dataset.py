"""BEIR SciFact: the corpus, the judged test queries, and how a ranking is
scored against the judgements (nDCG@10, Recall@10 by document)."""

from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass
from pathlib import Path

from bench.common import TOP_K


@dataclass
class SciFact:
    documents: list[dict]  # {"_id", "title", "text"}
    queries: list[tuple[str, str]]  # (query id, text), judged test queries only
    qrels: dict[str, dict[str, int]]  # query id -> {document id: relevance}
    corpus_documents: int  # documents in the whole corpus
    judged_queries: int  # test queries with judgements in the whole set


def load_scifact(path: Path, n_docs: int | None = None, n_queries: int | None = None) -> SciFact:
    """The first `n_queries` judged test queries and `n_docs` documents (all
    by default). A document subset keeps the chosen queries' judged documents
    first, so the quality numbers still mean something, then the others in
    corpus order."""
    corpus = _read_jsonl(path / "corpus.jsonl")
    qrels = _read_qrels(path / "qrels" / "test.tsv")
    judged = [(str(q["_id"]), q["text"]) for q in _read_jsonl(path / "queries.jsonl") if str(q["_id"]) in qrels]
    queries = judged[:n_queries] if n_queries is not None else judged
    qrels = {qid: qrels[qid] for qid, _ in queries}
    documents = corpus
    if n_docs is not None and n_docs < len(corpus):
        wanted = {doc_id for rels in qrels.values() for doc_id in rels}
        first = [d for d in corpus if str(d["_id"]) in wanted]
        rest = [d for d in corpus if str(d["_id"]) not in wanted]
        documents = (first + rest)[: max(n_docs, 0)]
    return SciFact(documents, queries, qrels, corpus_documents=len(corpus), judged_queries=len(judged))


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as lines:
        return [json.loads(line) for line in lines if line.strip()]


def _read_qrels(path: Path) -> dict[str, dict[str, int]]:
    qrels: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8") as lines:
        for row in csv.DictReader(lines, delimiter="\t"):
            qrels.setdefault(row["query-id"].strip(), {})[row["corpus-id"].strip()] = int(row["score"])
    return qrels


def document_text(doc: dict) -> str:
    """What both paths embed: title and abstract joined with ". "."""
    title, text = (doc.get("title") or "").strip(), (doc.get("text") or "").strip()
    return f"{title}. {text}" if title and text else (title or text)


def api_documents(documents: list[dict]) -> list[dict]:
    """SciFact documents as the ingest API takes them."""
    return [
        {"id": str(d["_id"]), "text": document_text(d), "metadata": {"title": d.get("title") or ""}} for d in documents
    ]


def document_ranking(chunk_owners: list[str]) -> list[str]:
    """Document ids ranked from a ranking of their chunks: a document takes
    the rank of its best chunk."""
    return list(dict.fromkeys(chunk_owners))


def ndcg_and_recall(ranked: list[str], rels: dict[str, int], k: int = TOP_K) -> tuple[float, float]:
    ranked = ranked[:k]
    dcg = sum(rels.get(doc_id, 0) / math.log2(i + 2) for i, doc_id in enumerate(ranked))
    ideal = sorted((s for s in rels.values() if s > 0), reverse=True)[:k]
    idcg = sum(s / math.log2(i + 2) for i, s in enumerate(ideal))
    positives = {doc_id for doc_id, s in rels.items() if s > 0}
    recall = len(positives & set(ranked)) / len(positives) if positives else 0.0
    return (dcg / idcg if idcg else 0.0), recall


def quality(rankings: dict[str, list[str]], qrels: dict[str, dict[str, int]]) -> dict:
    """Mean nDCG@10 and Recall@10 over the judged queries; a query missing
    from `rankings` scores 0."""
    scores = [ndcg_and_recall(rankings.get(qid, []), rels) for qid, rels in qrels.items()]
    n = len(scores)
    return {
        "queries": n,
        "ndcg@10": sum(s[0] for s in scores) / n if n else float("nan"),
        "recall@10": sum(s[1] for s in scores) / n if n else float("nan"),
    }
