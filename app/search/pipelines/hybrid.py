"""Hybrid retrieval: dense and keyword rankings fused by reciprocal rank.

Reciprocal-rank fusion (Cormack, Clarke and Büttcher, SIGIR 2009) needs no
score calibration between BM25 and cosine similarity. Its constant k = 60 and
the first-stage depth of 100 are the values from that paper and common use,
fixed a priori: nothing here was tuned on the queries we report.
"""

from __future__ import annotations

from collections import defaultdict

from app.search.pipelines import Pipeline, Ranking
from app.search.pipelines.dense import DensePipeline
from app.search.pipelines.keyword import KeywordPipeline

RRF_K = 60
FIRST_STAGE_DEPTH = 100


def reciprocal_rank_fusion(rankings: list[Ranking], depth: int, k: int = RRF_K) -> Ranking:
    fused: dict[int, float] = defaultdict(float)
    for ranking in rankings:
        for rank, (chunk_id, _score) in enumerate(ranking, start=1):
            fused[chunk_id] += 1.0 / (k + rank)
    # Ties broken by chunk id, so equal inputs always give the same order.
    ordered = sorted(fused.items(), key=lambda item: (-item[1], item[0]))
    return ordered[:depth]


class HybridPipeline(Pipeline):
    name = "hybrid"
    description = "Dense and keyword results fused by reciprocal rank (k=60): the default."
    capabilities = ("semantic", "lexical", "filters", "batch")

    def __init__(self, resources) -> None:
        super().__init__(resources)
        self.dense = DensePipeline(resources)
        self.keyword = KeywordPipeline(resources)

    def search(self, index, queries, depth, allowed_ids):
        stage_depth = max(depth, FIRST_STAGE_DEPTH)
        dense = self.dense.search(index, queries, stage_depth, allowed_ids)
        keyword = self.keyword.search(index, queries, stage_depth, allowed_ids)
        return [reciprocal_rank_fusion([d, k], depth) for d, k in zip(dense, keyword)]


PIPELINE = HybridPipeline
