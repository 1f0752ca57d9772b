"""Dense retrieval: the query's embedding against the chunks' in the vector index."""

from __future__ import annotations

from app.search.pipelines import Pipeline


class DensePipeline(Pipeline):
    name = "dense"
    description = "Semantic search: cosine similarity of sentence embeddings (all-MiniLM-L6-v2) in FAISS."
    capabilities = ("semantic", "filters", "batch")

    def search(self, index, queries, depth, allowed_ids):
        # One batched encode for all queries: far cheaper than one per query.
        vectors = self.resources.encoder.encode(queries)
        return index.vectors.search(vectors, depth, allowed_ids)


PIPELINE = DensePipeline
