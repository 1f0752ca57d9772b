"""FAISS index store: one index per collection on disk, in memory per reader.

A collection's index lives at `<root>/<key>/gen-<generation>.faiss`. The
generation number is owned by the caller (the collection row in SQL); a
reader asks for the generation it was told is current and reloads when that
moves. Files are written to a temporary name and renamed into place, so a
reader never sees a half-written index.
"""

from __future__ import annotations

import os
import re
import tempfile
import threading
from pathlib import Path

import faiss
import numpy as np

_GEN_FILE = re.compile(r"^gen-(\d+)\.faiss$")


class VectorIndex:
    """Exact inner-product search over normalized vectors, keyed by int64 ids."""

    def __init__(self, dimension: int, index: faiss.Index | None = None) -> None:
        self.dimension = dimension
        self.index = index if index is not None else faiss.IndexIDMap2(faiss.IndexFlatIP(dimension))

    @property
    def size(self) -> int:
        return int(self.index.ntotal)

    def ids(self) -> np.ndarray:
        return faiss.vector_to_array(self.index.id_map).astype("int64")

    def add(self, ids: np.ndarray, vectors: np.ndarray) -> None:
        if len(ids) == 0:
            return
        ids = np.asarray(ids, dtype="int64")
        # Adding an id twice would give duplicate hits: replace instead.
        self.index.remove_ids(ids)
        self.index.add_with_ids(np.ascontiguousarray(vectors, dtype="float32"), ids)

    def remove(self, ids: np.ndarray) -> int:
        if len(ids) == 0:
            return 0
        return int(self.index.remove_ids(np.asarray(ids, dtype="int64")))

    def search(
        self, queries: np.ndarray, k: int, allowed_ids: np.ndarray | None = None
    ) -> list[list[tuple[int, float]]]:
        """Per query, up to k (id, score) pairs, best first."""
        queries = np.ascontiguousarray(queries, dtype="float32")
        if self.size == 0 or k < 1:
            return [[] for _ in range(len(queries))]
        params = None
        if allowed_ids is not None:
            if len(allowed_ids) == 0:
                return [[] for _ in range(len(queries))]
            params = faiss.SearchParameters(
                sel=faiss.IDSelectorBatch(np.asarray(allowed_ids, dtype="int64"))
            )
        scores, ids = self.index.search(queries, min(k, self.size), params=params)
        return [
            [(int(i), float(s)) for i, s in zip(row_ids, row_scores) if i != -1]
            for row_ids, row_scores in zip(ids, scores)
        ]


class IndexStore:
    def __init__(self, root: Path, dimension: int) -> None:
        self.root = Path(root)
        self.dimension = dimension
        self._cache: dict[str, tuple[int, VectorIndex]] = {}
        self._lock = threading.Lock()

    def _path(self, key: str, generation: int) -> Path:
        return self.root / key / f"gen-{generation}.faiss"

    def get(self, key: str, generation: int) -> VectorIndex | None:
        """The index at `generation`, from memory when already loaded.

        None when no file exists for that generation (never written, or the
        index directory was lost): the caller rebuilds it from the chunk rows.
        """
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached[0] == generation:
                return cached[1]
        if generation == 0:
            index = VectorIndex(self.dimension)
        else:
            path = self._path(key, generation)
            try:
                index = VectorIndex(self.dimension, faiss.read_index(str(path)))
            except RuntimeError:
                if not path.exists():
                    return None
                raise
        with self._lock:
            self._cache[key] = (generation, index)
        return index

    def save(self, key: str, generation: int, index: VectorIndex) -> None:
        """Persist atomically as `generation` and drop files older than the one before."""
        directory = self.root / key
        directory.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".gen-", suffix=".tmp", dir=directory)
        os.close(fd)
        try:
            faiss.write_index(index.index, tmp)
            os.replace(tmp, self._path(key, generation))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        with self._lock:
            self._cache[key] = (generation, index)
        # Keep the previous generation a little longer for readers that were
        # told about it a moment ago.
        for path in directory.iterdir():
            match = _GEN_FILE.match(path.name)
            if match and int(match.group(1)) < generation - 1:
                path.unlink(missing_ok=True)

    def evict(self, key: str) -> None:
        """Forget the in-memory copy; the next get() reads the file."""
        with self._lock:
            self._cache.pop(key, None)

    def drop(self, key: str) -> None:
        self.evict(key)
        directory = self.root / key
        if directory.is_dir():
            for path in directory.iterdir():
                path.unlink(missing_ok=True)
            directory.rmdir()
