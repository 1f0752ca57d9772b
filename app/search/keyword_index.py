"""BM25 keyword search over chunk texts (bm25s), keyed by int64 chunk ids.

Built whole from the chunk rows for each collection generation (bm25s has
no incremental update) and persisted beside the vector index, so a worker
that starts later loads it instead of re-tokenizing the collection.
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import bm25s
import numpy as np
import Stemmer

# bm25s logs a progress line per load; we load often.
logging.getLogger("bm25s").setLevel(logging.WARNING)

_IDS_FILE = "chunk_ids.npy"
_META_FILE = "quarry.json"
_STOPWORDS = "en"
_stemmer = Stemmer.Stemmer("english")


def tokenize(texts: list[str]) -> list[list[str]]:
    """Lower-cased, stop words dropped, English-stemmed tokens: the same for
    the indexed chunks and the queries."""
    return bm25s.tokenize(texts, stopwords=_STOPWORDS, stemmer=_stemmer, return_ids=False, show_progress=False)


# A vocabulary term in memory: its str object and its dict slot.
_BYTES_PER_TERM = 120


class KeywordIndex:
    def __init__(self, chunk_ids: np.ndarray, retriever: bm25s.BM25 | None) -> None:
        # Position i of the BM25 corpus is chunk chunk_ids[i]; sorted ascending,
        # so an id's position is a binary search away.
        self.chunk_ids = np.asarray(chunk_ids, dtype="int64")
        self.retriever = retriever

    @classmethod
    def build(cls, chunk_ids: np.ndarray, texts: list[str]) -> KeywordIndex:
        order = np.argsort(np.asarray(chunk_ids, dtype="int64"), kind="stable")
        ids = np.asarray(chunk_ids, dtype="int64")[order]
        tokens = tokenize([texts[i] for i in order])
        if not any(tokens):  # nothing but stop words and one-letter tokens
            return cls(ids, None)
        retriever = bm25s.BM25()
        retriever.index(tokens, show_progress=False)
        return cls(ids, retriever)

    @property
    def size(self) -> int:
        return len(self.chunk_ids)

    def nbytes(self) -> int:
        """About what the index holds in memory: the BM25 score matrix and
        its vocabulary (a dict entry and a short string per term)."""
        total = self.chunk_ids.nbytes
        if self.retriever is not None:
            total += sum(a.nbytes for a in self.retriever.scores.values() if isinstance(a, np.ndarray))
            total += len(self.retriever.vocab_dict) * _BYTES_PER_TERM
        return total

    def search(
        self, queries: list[str], k: int, allowed_ids: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per query, up to k (chunk id, BM25 score) pairs, best first. Chunks
        sharing no term with the query are not hits."""
        if self.retriever is None or k < 1:
            return [[] for _ in queries]
        mask = self._mask(allowed_ids)
        return [self._one(tokens, k, mask) for tokens in tokenize(queries)]

    def _one(self, tokens: list[str], k: int, mask: np.ndarray | None) -> list[tuple[int, float]]:
        retriever = self.retriever
        assert retriever is not None  # search() answers without it when there is none
        token_ids = retriever.get_tokens_ids(tokens)
        if not token_ids:
            return []
        scores = retriever.get_scores_from_ids(token_ids)
        if mask is not None:
            scores = np.where(mask, scores, 0.0)
        candidates = np.flatnonzero(scores > 0)
        if len(candidates) > k:
            candidates = candidates[np.argpartition(-scores[candidates], k - 1)[:k]]
        # Ties broken by chunk id, so the ranking is deterministic.
        order = sorted(candidates, key=lambda pos: (-scores[pos], self.chunk_ids[pos]))
        return [(int(self.chunk_ids[pos]), float(scores[pos])) for pos in order]

    def _mask(self, allowed_ids: np.ndarray | None) -> np.ndarray | None:
        if allowed_ids is None:
            return None
        return np.isin(self.chunk_ids, np.asarray(allowed_ids, dtype="int64"))

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        np.save(directory / _IDS_FILE, self.chunk_ids)
        (directory / _META_FILE).write_text(json.dumps({"empty": self.retriever is None}))
        if self.retriever is not None:
            self.retriever.save(str(directory), show_progress=False)

    @classmethod
    def load(cls, directory: Path) -> KeywordIndex:
        meta = json.loads((directory / _META_FILE).read_text())
        ids = np.load(directory / _IDS_FILE)
        if meta["empty"]:
            return cls(ids, None)
        return cls(ids, bm25s.BM25.load(str(directory), show_progress=False))
