"""Retrieval pipelines. Each turns query strings into ranked chunk ids."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

import numpy as np

if TYPE_CHECKING:  # the web process validates pipeline names without loading FAISS
    from app.search.index_store import VectorIndex


class QueryEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class PipelineInfo:
    name: str
    description: str
    capabilities: dict[str, bool] = field(default_factory=dict)


class DensePipeline:
    info = PipelineInfo(
        name="dense",
        description="Embeds the query with the collection's sentence-transformers model "
        "and ranks chunks by cosine similarity in FAISS.",
        capabilities={"filters": True, "batch": True, "semantic": True},
    )

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
