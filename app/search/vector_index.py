"""Vector search over normalized embeddings, keyed by int64 chunk ids.

Two kinds: `flat` (exact inner product; removes ids in place) and `hnsw`
(FAISS `IndexHNSWFlat`: approximate, far faster on large collections, but it
cannot remove a vector). An hnsw index keeps deleted ids as tombstones that
every search filters out; the owner rebuilds it once too many pile up.
"""

from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

# A filter matching fewer vectors than this is searched exactly: a graph walk
# that must skip nearly every node it visits would miss the few that match.
EXACT_FILTER_LIMIT = 4096


@dataclass(frozen=True)
class HnswParams:
    m: int = 32
    ef_construction: int = 80
    ef_search: int = 128


class VectorIndex:
    def __init__(
        self,
        dimension: int,
        index: faiss.Index | None = None,
        *,
        tombstones: np.ndarray | None = None,
        ef_search: int = HnswParams.ef_search,
    ) -> None:
        self.dimension = dimension
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        self.ef_search = ef_search
        self.tombstones = np.unique(np.asarray(tombstones if tombstones is not None else [], dtype="int64"))

    @classmethod
    def create(cls, dimension: int, index_type: str = "flat", hnsw: HnswParams = HnswParams()) -> "VectorIndex":
        if index_type == "flat":
            return cls(dimension)
        if index_type != "hnsw":
            raise ValueError(f"unknown index type {index_type!r}")
        graph = faiss.IndexHNSWFlat(dimension, hnsw.m, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = hnsw.ef_construction
        return cls(dimension, faiss.IndexIDMap2(graph), ef_search=hnsw.ef_search)

    @property
    def index_type(self) -> str:
        inner = faiss.downcast_index(self.index.index)
        return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"

    @property
    def size(self) -> int:
        """Live vectors: tombstoned ones do not count."""
        return int(self.index.ntotal) - len(self.tombstones)

    @property
    def tombstone_fraction(self) -> float:
        total = int(self.index.ntotal)
        return len(self.tombstones) / total if total else 0.0

    def ids(self) -> np.ndarray:
        stored = faiss.vector_to_array(self.index.id_map).astype("int64")
        return np.setdiff1d(stored, self.tombstones, assume_unique=False)

    def copy(self) -> "VectorIndex":
        return VectorIndex(
            self.dimension, faiss.clone_index(self.index), tombstones=self.tombstones.copy(), ef_search=self.ef_search
        )

    def can_add(self, ids: np.ndarray) -> bool:
        """An hnsw index cannot take an id it already holds, even a tombstoned
        one (SQLite may hand out a deleted row's id again): rebuild instead."""
        if self.index_type == "flat":
            return True
        stored = faiss.vector_to_array(self.index.id_map)
        return not np.isin(np.asarray(ids, dtype="int64"), stored).any()

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.asarray(ids, dtype="int64")
        if not self.can_add(ids):
            raise ValueError("an hnsw index cannot take an id it already holds")
        if self.index_type == "flat":
            # Adding an id twice would give duplicate hits: replace instead.
            self.index.remove_ids(ids)
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), ids)

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        ids = np.asarray(ids, dtype="int64")
        if self.index_type == "flat":
            return int(self.index.remove_ids(ids))
        present = np.intersect1d(ids, self.ids())
        self.tombstones = np.union1d(self.tombstones, present)
        return len(present)

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per query, up to k (id, score) pairs, best first; only ids in
        `allowed_ids` when it is given."""
        queries = np.ascontiguousarray(queries, dtype="float32")
        if allowed_ids is not None:
            allowed_ids = np.setdiff1d(np.asarray(allowed_ids, dtype="int64"), self.tombstones)
        if self.size == 0 or k < 1 or (allowed_ids is not None and len(allowed_ids) == 0):
            return [[] for _ in range(len(queries))]
        if self.index_type == "hnsw" and allowed_ids is not None and len(allowed_ids) <= EXACT_FILTER_LIMIT:
            return self._exact(queries, k, allowed_ids)
        limit = min(k, self.size if allowed_ids is None else len(allowed_ids))
        scores, ids = self._search(queries, limit, allowed_ids)
        hits = [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i != -1]
            for row_ids, row_scores in zip(ids, scores)
        ]
        if self.index_type == "hnsw" and allowed_ids is not None and any(len(row) < limit for row in hits):
            return self._exact(queries, k, allowed_ids)
        return hits

    def _search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None):
        # Every selector is held in a local until the search returns: FAISS
        # keeps raw pointers to them.
        allowed = faiss.IDSelectorBatch(allowed_ids) if allowed_ids is not None else None
        dead = faiss.IDSelectorBatch(self.tombstones) if len(self.tombstones) else None
        alive = faiss.IDSelectorNot(dead) if dead is not None else None
        both = faiss.IDSelectorAnd(allowed, alive) if allowed is not None and alive is not None else None
        selector = both or allowed or alive
        if self.index_type == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(self.ef_search, k), sel=selector)
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None
        return self.index.search(queries, k, params=params)

    def _exact(self, queries: np.ndarray, k: int, ids: np.ndarray) -> list[list[tuple[int, float]]]:
        vectors = np.vstack([self.index.reconstruct(int(i)) for i in ids])
        scores = queries @ vectors.T
        top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
        return [[(int(ids[j]), float(row[j])) for j in order] for row, order in zip(scores, top)]
