"""Vector search over normalized embeddings, keyed by int64 chunk ids.

Two kinds: `flat` (exact inner product; removes ids in place) and `hnsw`
(FAISS `IndexHNSWFlat`: approximate, far faster on large collections, but it
cannot remove a vector). An hnsw index keeps deleted ids as tombstones that
every search filters out; the owner rebuilds it once too many pile up.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

import faiss
import numpy as np

# A filter matching fewer vectors than this is searched exactly: a graph walk
# that must skip nearly every node it visits would miss the few that match.
EXACT_FILTER_LIMIT = 4096
# Vectors scored per step of an exact search (about 100 MB at 384 dimensions).
EXACT_BATCH = 65536


def set_search_threads(threads: int) -> None:
    """The OpenMP threads FAISS may use in this process. FAISS brings its own
    OpenMP runtime, apart from torch's: left at one thread per core in every
    pool process, each small search wakes threads that then spin on cores
    the other processes' encodes are using."""
    faiss.omp_set_num_threads(max(1, threads))


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
        # Always an IndexIDMap2: made here, or read or cloned from one (faiss
        # types read_index() and clone_index() as returning a plain Index).
        self.index = (
            cast(faiss.IndexIDMap2, index) if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))
        )
        self.ef_search = ef_search
        self.tombstones = np.unique(np.asarray(tombstones if tombstones is not None else [], dtype="int64"))
        self._live: np.ndarray | None = None  # sorted live ids, made on first use

    @classmethod
    def create(cls, dimension: int, index_type: str = "flat", hnsw: HnswParams = HnswParams()) -> VectorIndex:
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

    def nbytes(self) -> int:
        """About what the index holds in memory: its vectors and ids, and an
        HNSW graph's links."""
        total = int(self.index.ntotal) * (self.dimension * 4 + 8) + self.tombstones.nbytes
        inner = faiss.downcast_index(self.index.index)
        if isinstance(inner, faiss.IndexHNSW):
            graph: Any = inner.hnsw  # faiss's hints leave out the graph's vectors
            total += (int(graph.neighbors.size()) + int(graph.levels.size())) * 4
        return total

    @property
    def size(self) -> int:
        """Live vectors: tombstoned ones do not count."""
        return int(self.index.ntotal) - len(self.tombstones)

    def tombstone_fraction_after(self, removing: int = 0) -> float:
        """The share of stored vectors that would be dead after removing
        `removing` more (always 0 for flat, which removes in place)."""
        total = int(self.index.ntotal)
        if self.index_type == "flat" or not total:
            return 0.0
        return (len(self.tombstones) + removing) / total

    def ids(self) -> np.ndarray:
        """The live ids, sorted."""
        if self._live is None:
            stored = faiss.vector_to_array(self.index.id_map).astype("int64")
            self._live = np.setdiff1d(stored, self.tombstones)
        return self._live.copy()

    def _only_live(self, ids: np.ndarray) -> np.ndarray:
        """`ids` without those this index does not hold: deleted ones, and rows
        written since it was built (an ingest still running)."""
        live = self.ids() if self._live is None else self._live
        positions = np.minimum(np.searchsorted(live, ids), max(len(live) - 1, 0))
        return ids[live[positions] == ids] if len(live) else ids[:0]

    def copy(self) -> VectorIndex:
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
            self.index.remove_ids(ids)  # type: ignore[arg-type]  # faiss's stubs miss the array overload
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), ids)
        self._live = None

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        ids = np.asarray(ids, dtype="int64")
        self._live, live = None, self.ids()
        if self.index_type == "flat":
            return int(self.index.remove_ids(ids))  # type: ignore[arg-type]  # faiss's stubs miss the array overload
        present = np.intersect1d(ids, live)
        self.tombstones = np.union1d(self.tombstones, present)
        return len(present)

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per query, up to k (id, score) pairs, best first; only ids in
        `allowed_ids` when it is given."""
        queries = np.ascontiguousarray(queries, dtype="float32")
        if allowed_ids is not None:
            allowed_ids = self._only_live(np.unique(np.asarray(allowed_ids, dtype="int64")))
        if self.size == 0 or k < 1 or (allowed_ids is not None and len(allowed_ids) == 0):
            return [[] for _ in range(len(queries))]
        if self.index_type == "hnsw" and allowed_ids is not None and len(allowed_ids) <= EXACT_FILTER_LIMIT:
            return self._exact(queries, k, allowed_ids)
        limit = min(k, self.size if allowed_ids is None else len(allowed_ids))
        hits = self._search(queries, limit, allowed_ids, self.ef_search)
        if self.index_type == "hnsw" and allowed_ids is not None and any(len(row) < limit for row in hits):
            # A filter that rules out most of the graph: search wider, then exactly.
            hits = self._search(queries, limit, allowed_ids, max(4 * self.ef_search, 4 * limit))
            if any(len(row) < limit for row in hits):
                return self._exact(queries, k, allowed_ids)
        return hits

    def _search(self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None, ef_search: int):
        # Every selector is held in a local until the search returns: FAISS
        # keeps raw pointers to them.
        allowed = faiss.IDSelectorBatch(allowed_ids) if allowed_ids is not None else None
        dead = faiss.IDSelectorBatch(self.tombstones) if len(self.tombstones) else None
        alive = faiss.IDSelectorNot(dead) if dead is not None else None
        both = faiss.IDSelectorAnd(allowed, alive) if allowed is not None and alive is not None else None
        selector = both or allowed or alive
        if self.index_type == "hnsw":
            params = faiss.SearchParametersHNSW(efSearch=max(ef_search, k), sel=selector)  # type: ignore[attr-defined]  # not in faiss's stubs
        else:
            params = faiss.SearchParameters(sel=selector) if selector is not None else None  # type: ignore[call-arg]  # faiss's stubs miss the keyword form
        scores, ids = self.index.search(queries, k, params=params)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i != -1]
            for row_ids, row_scores in zip(ids, scores)
        ]

    def _exact(self, queries: np.ndarray, k: int, ids: np.ndarray) -> list[list[tuple[int, float]]]:
        """Exact scores over `ids`, a bounded slice of vectors at a time."""
        best_ids = np.zeros((len(queries), 0), dtype="int64")
        best_scores = np.zeros((len(queries), 0), dtype="float32")
        for start in range(0, len(ids), EXACT_BATCH):
            batch = ids[start : start + EXACT_BATCH]
            vectors = np.vstack([self.index.reconstruct(int(i)) for i in batch])
            best_ids = np.hstack([best_ids, np.broadcast_to(batch, (len(queries), len(batch)))])
            best_scores = np.hstack([best_scores, queries @ vectors.T])
            order = np.argsort(-best_scores, axis=1, kind="stable")[:, :k]
            best_ids = np.take_along_axis(best_ids, order, axis=1)
            best_scores = np.take_along_axis(best_scores, order, axis=1)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores)]
            for row_ids, row_scores in zip(best_ids, best_scores)
        ]
