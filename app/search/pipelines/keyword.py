"""Keyword retrieval: BM25 over the chunks' stemmed terms."""

from __future__ import annotations

from app.search.pipelines import Pipeline


class KeywordPipeline(Pipeline):
    name = "keyword"
    description = "Lexical search: BM25 (bm25s) over stemmed terms; finds exact rare terms, codes and names."
    capabilities = ("lexical", "filters", "batch")

    def search(self, index, queries, depth, allowed_ids):
        return index.keywords.search(queries, depth, allowed_ids)


PIPELINE = KeywordPipeline
