"""Retrieval pipelines. Each turns query strings into ranked chunk ids."""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # the web process validates pipeline names without loading FAISS
    from app.search.index_store import VectorIndex


class QueryEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


class DensePipeline:
    """Embeds the query and ranks chunks by cosine similarity in FAISS."""

    def __init__(self, encoder: QueryEncoder) -> None:
        self.encoder = encoder

    def search(
        self,
        index: "VectorIndex",
        queries: list[str],
        top_k: int,
        allowed_ids: np.ndarray | None = None,
    ) -> list[list[tuple[int, float]]]:
        # One batched encode for all queries: far cheaper than one per query.
        vectors = self.encoder.encode(queries)
        return index.search(vectors, top_k, allowed_ids)


PIPELINES = {"dense": DensePipeline}
DEFAULT_PIPELINE = "dense"
