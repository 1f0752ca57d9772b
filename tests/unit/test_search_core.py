"""The search core's pure parts: reciprocal-rank fusion, the document map
behind filters and collapse, extractive answers."""

from __future__ import annotations

import numpy as np

from app.search.answers import extractive_answer, split_sentences
from app.search.document_map import DocumentMap
from app.search.pipelines import DEFAULT_PIPELINE, PIPELINES
from app.search.pipelines.hybrid import reciprocal_rank_fusion


def test_rrf_rewards_agreement_and_breaks_ties_by_id():
    dense = [(1, 0.9), (2, 0.8), (3, 0.7)]
    keyword = [(3, 12.0), (4, 9.0), (1, 1.0)]
    fused = [chunk for chunk, _ in reciprocal_rank_fusion([dense, keyword], depth=10)]
    assert fused[:2] == [1, 3]  # in both lists
    assert reciprocal_rank_fusion([[(7, 1.0)], [(5, 1.0)]], depth=10) == [(5, 1 / 61), (7, 1 / 61)]
    assert len(reciprocal_rank_fusion([dense, keyword], depth=2)) == 2


def documents() -> DocumentMap:
    # chunks 10, 11 -> doc a; 20 -> doc b; 30, 31 -> doc c
    return DocumentMap(
        np.array([31, 10, 20, 11, 30]),
        np.array([2, 0, 1, 0, 2]),
        ["a", "b", "c"],
        [{"lang": "en", "n": 1, "tags": ["x", "y"]}, {"lang": "de", "n": 2.0}, {"lang": "en", "flag": True}],
    )


def test_filters_select_chunks_by_metadata_values_lists_and_document_ids():
    docs = documents()
    assert docs.allowed_chunks({}) is None
    assert sorted(docs.allowed_chunks({"lang": "en"})) == [10, 11, 30, 31]
    assert sorted(docs.allowed_chunks({"lang": ["de", "fr"]})) == [20]
    assert sorted(docs.allowed_chunks({"lang": "en", "tags": "y"})) == [10, 11]  # any element of a list
    assert sorted(docs.allowed_chunks({"n": 2})) == [20]  # 2 == 2.0
    assert sorted(docs.allowed_chunks({"n": "1"})) == []  # a string is not a number
    assert sorted(docs.allowed_chunks({"flag": True})) == [30, 31]
    assert sorted(docs.allowed_chunks({"document_id": ["b", "c", "zz"]})) == [20, 30, 31]
    assert sorted(docs.allowed_chunks({"missing": "key"})) == []


def test_document_of_maps_chunks_and_reports_unknown_ones():
    assert documents().document_of([30, 10, 99, 20]) == [2, 0, None, 1]


class WordEncoder:
    """Bag-of-words vectors over a tiny vocabulary, normalized."""

    VOCAB = ["moon", "tide", "bread", "yeast", "sea"]

    def encode(self, texts):
        vectors = np.array([[t.lower().count(w) for w in self.VOCAB] for t in texts], dtype="float32") + 1e-6
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_extractive_answer_picks_the_closest_sentences_and_cites_them():
    hits = [
        {"document_id": "d1", "chunk_id": "1", "text": "Bread needs yeast. The moon pulls the tide. Ovens are hot."},
        {"document_id": "d2", "chunk_id": "2", "text": "The sea has a tide. Bakers use yeast."},
    ]
    answer = extractive_answer("moon tide", hits, WordEncoder())
    assert answer["citations"][0] == {
        "text": "The moon pulls the tide.",
        "document_id": "d1",
        "chunk_id": "1",
        "score": answer["citations"][0]["score"],
    }
    assert answer["text"].startswith("The moon pulls the tide.")
    assert len(answer["citations"]) == 3
    assert extractive_answer("moon", [], WordEncoder()) is None


def test_sentences_split_at_sentence_ends_only():
    assert split_sentences("It rose 3.5 m. Then rain! Is it? yes") == ["It rose 3.5 m.", "Then rain!", "Is it? yes"]


def test_every_pipeline_is_registered_and_hybrid_is_the_default():
    assert list(PIPELINES) == ["dense", "keyword", "hybrid", "rerank"]
    assert DEFAULT_PIPELINE == "hybrid"
    for pipeline in PIPELINES.values():
        assert pipeline.description and pipeline.capabilities
