"""Retrieval pipelines behind one interface.

A pipeline turns query strings into ranked chunk ids within one collection
generation (its vector and keyword indexes). Each kind is one module here
that defines a `Pipeline` subclass; adding a kind is adding a module and its
name to `_MODULES`. Nothing here loads FAISS, torch or a model at import
time, so the web process can list and validate pipelines cheaply.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, ClassVar, Protocol

import numpy as np

if TYPE_CHECKING:
    from app.config import Settings
    from app.search.index_store import CollectionIndex

Ranking = list[tuple[int, float]]  # (chunk id, score), best first


class QueryEncoder(Protocol):
    def encode(self, texts: list[str]) -> np.ndarray: ...


@dataclass(frozen=True)
class SearchResources:
    """What pipelines may use besides the indexes; loaded once per worker process."""

    encoder: QueryEncoder
    # Chunk texts by id, for pipelines that read candidates (rerankers).
    chunk_texts: Callable[[list[int]], dict[int, str]]
    settings: Settings


class Pipeline:
    name: ClassVar[str]
    description: ClassVar[str]
    capabilities: ClassVar[tuple[str, ...]]

    def __init__(self, resources: SearchResources) -> None:
        self.resources = resources

    @classmethod
    def unavailable_reason(cls, settings: Settings) -> str | None:
        """Why this pipeline cannot run with these settings; None when it can."""
        return None

    def search(
        self, index: CollectionIndex, queries: list[str], depth: int, allowed_ids: np.ndarray | None
    ) -> list[Ranking]:
        """Per query, up to `depth` chunks, best first; only `allowed_ids` when given."""
        raise NotImplementedError


_MODULES = ("dense", "keyword", "hybrid", "rerank")
DEFAULT_PIPELINE = "hybrid"
# chunk: every hit is a chunk; document: each document once, at its best chunk.
COLLAPSE_MODES = ("chunk", "document")


def _load() -> dict[str, type[Pipeline]]:
    found = {}
    for module_name in _MODULES:
        module = importlib.import_module(f"{__name__}.{module_name}")
        found[module.PIPELINE.name] = module.PIPELINE
    return found


PIPELINES: dict[str, type[Pipeline]] = _load()
