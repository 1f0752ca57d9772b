"""Which document each chunk belongs to, and which documents carry which
metadata: the in-memory map a worker keeps per collection generation so a
filter or a per-document collapse costs array operations, not a scan of
every document's metadata per search.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

import numpy as np

# The filter key that selects documents by their id rather than by metadata.
DOCUMENT_ID_FILTER = "document_id"


def _canonical(value: Any) -> tuple[str, Any] | None:
    """A hashable form under which equal JSON scalars meet (1 == 1.0; "1" is
    not 1); None for values a filter cannot name (objects, null)."""
    if isinstance(value, bool):
        return ("bool", value)
    if isinstance(value, (int, float)):
        return ("number", float(value))
    if isinstance(value, str):
        return ("string", value)
    return None


# A document id (or a metadata value) in memory: the string, its dict entry
# and its list slot.
_BYTES_PER_DOCUMENT = 160


class DocumentMap:
    def __init__(
        self,
        chunk_ids: np.ndarray,
        chunk_documents: np.ndarray,
        external_ids: list[str],
        metadata: list[dict[str, Any]],
    ) -> None:
        """`chunk_documents[i]` is the position, in `external_ids` and
        `metadata`, of the document that chunk `chunk_ids[i]` belongs to."""
        order = np.argsort(chunk_ids, kind="stable")
        self.chunk_ids = np.asarray(chunk_ids, dtype="int64")[order]
        self.chunk_documents = np.asarray(chunk_documents, dtype="int64")[order]
        self.external_ids = external_ids
        self._by_external_id = {external_id: pos for pos, external_id in enumerate(external_ids)}
        self._postings: dict[tuple[str, tuple[str, Any]], list[int]] = defaultdict(list)
        for position, meta in enumerate(metadata):
            for key, value in (meta or {}).items():
                # A list value matches a filter on any of its elements.
                for item in value if isinstance(value, list) else [value]:
                    canonical = _canonical(item)
                    if canonical is not None:
                        self._postings[(key, canonical)].append(position)

    def nbytes(self) -> int:
        """About what the map holds in memory: its arrays, one entry per
        document id and per metadata posting."""
        postings = sum(len(documents) for documents in self._postings.values())
        return (
            self.chunk_ids.nbytes
            + self.chunk_documents.nbytes
            + len(self.external_ids) * _BYTES_PER_DOCUMENT
            + len(self._postings) * _BYTES_PER_DOCUMENT
            + postings * 8
        )

    def documents_matching(self, filters: dict[str, Any]) -> np.ndarray:
        """Positions of the documents that match every filter (a value, or a
        list of accepted values)."""
        matching: np.ndarray | None = None
        for key, wanted in filters.items():
            values = wanted if isinstance(wanted, list) else [wanted]
            found = self._matching_one(key, values)
            matching = found if matching is None else np.intersect1d(matching, found)
        return matching if matching is not None else np.arange(len(self.external_ids))

    def _matching_one(self, key: str, values: Iterable[Any]) -> np.ndarray:
        positions: set[int] = set()
        for value in values:
            if key == DOCUMENT_ID_FILTER:
                position = self._by_external_id.get(value) if isinstance(value, str) else None
                positions.update([] if position is None else [position])
            else:
                canonical = _canonical(value)
                positions.update(self._postings.get((key, canonical), ()) if canonical else ())
        return np.array(sorted(positions), dtype="int64")

    def allowed_chunks(self, filters: dict[str, Any]) -> np.ndarray | None:
        """Chunk ids a filtered search may return; None when nothing is filtered."""
        if not filters:
            return None
        documents = self.documents_matching(filters)
        return self.chunk_ids[np.isin(self.chunk_documents, documents)]

    def document_of(self, chunk_ids: Iterable[int]) -> list[int | None]:
        """The document position of each chunk; None for a chunk not in the map."""
        ids = np.fromiter(chunk_ids, dtype="int64")
        positions = np.searchsorted(self.chunk_ids, ids)
        found = []
        for chunk_id, position in zip(ids, positions):
            inside = position < len(self.chunk_ids) and self.chunk_ids[position] == chunk_id
            found.append(int(self.chunk_documents[position]) if inside else None)
        return found
