"""Reranking: hybrid candidates re-scored by a cross-encoder that reads the
query and each candidate's text together.

No cross-encoder ships with Quarry: `RERANK_MODEL` names a local
sentence-transformers CrossEncoder folder. Without one the pipeline is
unavailable and a search asking for it is refused at submit.
"""

from __future__ import annotations

import threading
from pathlib import Path

from app.search.pipelines import Pipeline
from app.search.pipelines.hybrid import HybridPipeline

_models: dict[str, object] = {}
_lock = threading.Lock()


def cross_encoder(path: str):
    """The process's cross-encoder for `path`, loaded on first use."""
    with _lock:
        if path not in _models:
            from app.search.embedding import stay_offline

            stay_offline()
            from sentence_transformers import CrossEncoder

            _models[path] = CrossEncoder(path, device="cpu", local_files_only=True)
        return _models[path]


class RerankPipeline(Pipeline):
    name = "rerank"
    description = "Hybrid candidates re-scored by a cross-encoder (RERANK_MODEL)."
    capabilities = ("semantic", "lexical", "filters", "batch", "cross_encoder")

    def __init__(self, resources) -> None:
        super().__init__(resources)
        self.first_stage = HybridPipeline(resources)

    @classmethod
    def unavailable_reason(cls, settings):
        if not settings.rerank_model:
            return "No cross-encoder is configured (set RERANK_MODEL to a local model folder)."
        if not (Path(settings.rerank_model) / "config.json").is_file():
            return f"RERANK_MODEL={settings.rerank_model} is not a model folder."
        return None

    def search(self, index, queries, depth, allowed_ids):
        candidates = max(depth, self.resources.settings.rerank_candidates)
        first = self.first_stage.search(index, queries, candidates, allowed_ids)
        texts = self.resources.chunk_texts([chunk_id for ranking in first for chunk_id, _ in ranking])
        model = cross_encoder(self.resources.settings.rerank_model)
        reranked = []
        for query, ranking in zip(queries, first):
            kept = [chunk_id for chunk_id, _ in ranking if chunk_id in texts]
            if not kept:
                reranked.append([])
                continue
            scores = model.predict([(query, texts[c]) for c in kept], show_progress_bar=False)
            order = sorted(zip(kept, (float(s) for s in scores)), key=lambda item: (-item[1], item[0]))
            reranked.append(order[:depth])
        return reranked


PIPELINE = RerankPipeline
