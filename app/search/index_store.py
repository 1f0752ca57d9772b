"""Index store: a collection's vector and keyword indexes on disk, one set per
generation, and in memory per reader.

Generation N of a collection lives in `<root>/<key>/gen-N/` (`vectors.faiss`,
`tombstones.npy`, `keywords/`). The generation number is owned by the caller
(the collection row in SQL); a reader asks for the generation it was told is
current and reloads when that moves. A generation is written to a temporary
folder and renamed into place, so a reader never sees half of one.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import logging
import re
import shutil
import tempfile
import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np

from app.search.document_map import DocumentMap
from app.search.keyword_index import KeywordIndex
from app.search.vector_index import HnswParams, VectorIndex

_GEN_DIR = re.compile(r"^gen-(\d+)$")
log = logging.getLogger(__name__)


@dataclass
class CollectionIndex:
    """Everything a pipeline searches in one collection generation."""

    generation: int
    vectors: VectorIndex
    keywords: KeywordIndex
    # Its documents and their metadata, for filters and collapse: built from
    # SQL by the first search that needs them, then kept with the indexes.
    documents: DocumentMap | None = None

    def nbytes(self) -> int:
        documents = self.documents.nbytes() if self.documents is not None else 0
        return self.vectors.nbytes() + self.keywords.nbytes() + documents


def return_freed_memory() -> None:
    """Hand the heap an index freed back to the system. glibc keeps freed
    memory for reuse, so a process that forgets indexes to stay within its
    budget would otherwise keep their pages resident anyway."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim() -> Callable[[int], int] | None:
    """glibc's malloc_trim, or None where the C library has none."""
    try:
        return ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim
    except (OSError, AttributeError):
        return None


class IndexStore:
    """`budget_bytes`: how much of the collections' indexes this process keeps
    in memory (None: no bound). Past it, the least recently searched ones are
    forgotten; their files stay, and the next search reads them again."""

    def __init__(
        self, root: Path, dimension: int, hnsw: HnswParams = HnswParams(), budget_bytes: int | None = None
    ) -> None:
        self.root = Path(root)
        self.dimension = dimension
        self.hnsw = hnsw
        self.budget_bytes = budget_bytes
        # Least recently used first.
        self._cache: OrderedDict[str, CollectionIndex] = OrderedDict()
        self._sizes: dict[str, int] = {}
        self._lock = threading.Lock()

    @property
    def cached_bytes(self) -> int:
        with self._lock:
            return sum(self._sizes.values())

    def cached_keys(self) -> list[str]:
        """The collections in memory, least recently used first."""
        with self._lock:
            return list(self._cache)

    def _keep(self, key: str, index: CollectionIndex) -> int:
        """Hold `index` as the most recently used, then forget the least
        recently used others while over budget (one collection larger than
        the whole budget is still served, alone); how many it forgot.
        Called under the lock."""
        self._cache[key] = index
        self._cache.move_to_end(key)
        self._sizes[key] = index.nbytes()
        forgotten = 0
        while self.budget_bytes is not None and sum(self._sizes.values()) > self.budget_bytes and len(self._cache) > 1:
            forgotten += 1
            oldest, _ = self._cache.popitem(last=False)
            log.info(
                "index cache: forgot collection %s (%d bytes) to stay within %d",
                oldest,
                self._sizes.pop(oldest),
                self.budget_bytes,
            )
        return forgotten

    def _path(self, key: str, generation: int) -> Path:
        return self.root / key / f"gen-{generation}"

    def empty(self, index_type: str, generation: int = 0) -> CollectionIndex:
        return CollectionIndex(
            generation,
            VectorIndex.create(self.dimension, index_type, self.hnsw),
            KeywordIndex.build(np.zeros(0, dtype="int64"), []),
        )

    def get(self, key: str, generation: int, index_type: str = "flat") -> CollectionIndex | None:
        """The indexes at `generation`, from memory when already loaded.

        None when no files exist for that generation (never written, or the
        index directory was lost): the caller rebuilds them from the chunk rows.
        """
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.generation == generation:
                self._cache.move_to_end(key)
                return cached
        loaded: CollectionIndex | None
        if generation == 0:
            loaded = self.empty(index_type)
        else:
            loaded = self._load(self._path(key, generation), generation)
            if loaded is None:
                return None
        with self._lock:
            forgotten = self._keep(key, loaded)
        if forgotten:
            return_freed_memory()
        return loaded

    def _load(self, path: Path, generation: int) -> CollectionIndex | None:
        """None when any part of the generation is missing or unreadable: the
        chunk rows are the truth, and rebuilding from them is always safe."""
        try:
            vectors = faiss.read_index(str(path / "vectors.faiss"))
            tombstones = np.load(path / "tombstones.npy")
            keywords = KeywordIndex.load(path / "keywords")
        except (RuntimeError, OSError, ValueError) as exc:
            if path.exists():
                log.warning("index files in %s unreadable (%s); they will be rebuilt", path, exc)
            return None
        return CollectionIndex(
            generation,
            VectorIndex(self.dimension, vectors, tombstones=tombstones, ef_search=self.hnsw.ef_search),
            keywords,
        )

    def save(self, key: str, index: CollectionIndex) -> None:
        """Persist atomically and drop generations older than the one before
        (readers told about those re-read the collection's generation)."""
        directory = self.root / key
        directory.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=".gen-", suffix=".tmp", dir=directory))
        try:
            faiss.write_index(index.vectors.index, str(tmp / "vectors.faiss"))
            np.save(tmp / "tombstones.npy", index.vectors.tombstones)
            index.keywords.save(tmp / "keywords")
            target = self._path(key, index.generation)
            shutil.rmtree(target, ignore_errors=True)  # a crashed writer's leftover
            tmp.rename(target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
        # Keep the previous generation a little longer for readers that were
        # told about it a moment ago.
        for path in directory.iterdir():
            match = _GEN_DIR.match(path.name)
            if match and int(match.group(1)) < index.generation - 1:
                shutil.rmtree(path, ignore_errors=True)

    def remember(self, key: str, index: CollectionIndex) -> None:
        """Serve `index` from memory: the writer calls this once the new
        generation is committed, so it never serves one nobody committed."""
        with self._lock:
            forgotten = self._keep(key, index)
        if forgotten:
            return_freed_memory()

    def documents(self, key: str, generation: int) -> DocumentMap | None:
        """The document map kept with the indexes at `generation`, if any."""
        with self._lock:
            cached = self._cache.get(key)
            return cached.documents if cached is not None and cached.generation == generation else None

    def attach_documents(self, key: str, generation: int, documents: DocumentMap) -> None:
        """Keep `documents` with the indexes at `generation` (if those are
        still the ones in memory), counted in the budget."""
        with self._lock:
            cached = self._cache.get(key)
            if cached is not None and cached.generation == generation:
                cached.documents = documents
                forgotten = self._keep(key, cached)
            else:
                forgotten = 0
        if forgotten:
            return_freed_memory()

    def evict(self, key: str) -> None:
        """Forget the in-memory copy; the next get() reads the files."""
        with self._lock:
            self._cache.pop(key, None)
            self._sizes.pop(key, None)

    def drop(self, key: str) -> None:
        self.evict(key)
        shutil.rmtree(self.root / key, ignore_errors=True)
