"""Index store and the two index kinds: persistence, reload by generation,
atomic folders, hnsw tombstones, BM25."""

from __future__ import annotations

import numpy as np
import pytest

from app.search.document_map import DocumentMap
from app.search.index_store import CollectionIndex, IndexStore
from app.search.keyword_index import KeywordIndex
from app.search.vector_index import EXACT_FILTER_LIMIT, HnswParams, VectorIndex

DIM = 16


def vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def bundle(generation: int, index: VectorIndex, texts: list[str] | None = None) -> CollectionIndex:
    ids = index.ids()
    texts = texts or [f"chunk number {i}" for i in ids]
    return CollectionIndex(generation, index, KeywordIndex.build(ids, texts))


def top_ids(hits):
    return [[i for i, _ in row] for row in hits]


def test_add_persist_reload_in_a_fresh_store_gives_the_same_results(tmp_path):
    index = VectorIndex(DIM)
    index.add(np.arange(1000, 1200), vectors(200, seed=1))
    queries = vectors(5, seed=2)
    before = index.search(queries, 10)

    IndexStore(tmp_path, DIM).save("coll", bundle(1, index))
    reloaded = IndexStore(tmp_path, DIM).get("coll", 1)

    assert reloaded is not None and reloaded.vectors is not index
    assert reloaded.vectors.size == reloaded.keywords.size == 200
    after = reloaded.vectors.search(queries, 10)
    assert top_ids(after) == top_ids(before)
    assert np.allclose([[s for _, s in row] for row in after], [[s for _, s in row] for row in before])


def test_a_vector_finds_itself_first_with_its_id():
    index = VectorIndex(DIM)
    data = vectors(50, seed=3)
    index.add(np.arange(7, 57), data)
    hits = index.search(data[[10, 20]], 3)
    assert [row[0][0] for row in hits] == [17, 27]
    assert hits[0][0][1] == pytest.approx(1.0, abs=1e-5)


def test_reader_reloads_when_the_generation_moves(tmp_path):
    writer, reader = IndexStore(tmp_path, DIM), IndexStore(tmp_path, DIM)
    first = VectorIndex(DIM)
    first.add(np.arange(10), vectors(10, seed=4))
    writer.save("coll", bundle(1, first))
    assert reader.get("coll", 1).vectors.size == 10
    assert reader.get("coll", 1) is reader.get("coll", 1)  # cached while unchanged

    second = VectorIndex(DIM)
    second.add(np.arange(25), vectors(25, seed=5))
    writer.save("coll", bundle(2, second))
    assert reader.get("coll", 2).vectors.size == 25


def test_old_generations_are_pruned_and_missing_ones_report_none(tmp_path):
    store = IndexStore(tmp_path, DIM)
    for generation in (1, 2, 3, 4):
        index = VectorIndex(DIM)
        index.add(np.arange(generation), vectors(generation, seed=generation))
        store.save("coll", bundle(generation, index))
    folders = sorted(p.name for p in (tmp_path / "coll").iterdir())
    assert folders == ["gen-3", "gen-4"]  # no temporary folders left behind
    assert IndexStore(tmp_path, DIM).get("coll", 1) is None
    assert IndexStore(tmp_path, DIM).get("other", 0).vectors.size == 0


def test_adding_an_id_again_replaces_its_vector():
    index = VectorIndex(DIM)
    data = vectors(3, seed=6)
    index.add(np.array([1, 2, 3]), data)
    index.add(np.array([2]), data[[0]])
    assert index.size == 3
    hits = index.search(data[[0]], 3)[0]
    assert sorted(i for i, s in hits if s > 0.9999) == [1, 2]


def test_search_can_be_restricted_to_allowed_ids():
    index = VectorIndex(DIM)
    data = vectors(30, seed=7)
    index.add(np.arange(30), data)
    hits = index.search(data[[0]], 5, allowed_ids=np.array([3, 4]))[0]
    assert sorted(i for i, _ in hits) == [3, 4]
    assert index.search(data[[0]], 5, allowed_ids=np.array([], dtype="int64")) == [[]]
    assert index.remove(np.array([0, 1])) == 2 and index.size == 28


def hnsw(n: int, seed: int) -> tuple[VectorIndex, np.ndarray]:
    index = VectorIndex.create(DIM, "hnsw", HnswParams(m=16, ef_construction=64, ef_search=64))
    data = vectors(n, seed=seed)
    index.add(np.arange(n), data)
    return index, data


def test_hnsw_finds_the_same_top_hit_as_flat():
    index, data = hnsw(500, seed=8)
    flat = VectorIndex(DIM)
    flat.add(np.arange(500), data)
    queries = vectors(20, seed=9)
    assert [row[0] for row in top_ids(index.search(queries, 1))] == [row[0] for row in top_ids(flat.search(queries, 1))]
    assert index.index_type == "hnsw" and flat.index_type == "flat"


def test_hnsw_deletes_by_tombstone_and_forgets_them_after_a_reload(tmp_path):
    index, data = hnsw(200, seed=10)
    assert index.remove(np.array([5, 6, 999])) == 2
    assert index.size == 198 and index.tombstone_fraction_after() == pytest.approx(2 / 200)
    assert index.tombstone_fraction_after(8) == pytest.approx(10 / 200)
    assert 5 not in index.ids()
    assert all(i not in (5, 6) for i in top_ids(index.search(data[[5, 6]], 10))[0])
    assert not index.can_add(np.array([5]))  # an id it still holds: the owner rebuilds

    IndexStore(tmp_path, DIM).save("coll", bundle(1, index))
    reloaded = IndexStore(tmp_path, DIM).get("coll", 1, "hnsw").vectors
    assert reloaded.index_type == "hnsw" and reloaded.size == 198
    assert 5 not in top_ids(reloaded.search(data[[5]], 10))[0]


def test_hnsw_filter_returns_a_match_ranked_far_down():
    index, data = hnsw(EXACT_FILTER_LIMIT + 1000, seed=11)
    far = int(np.argsort(data @ data[0])[0])  # the least similar vector
    assert top_ids(index.search(data[[0]], 3, allowed_ids=np.array([far])))[0] == [far]
    allowed = np.arange(0, EXACT_FILTER_LIMIT + 1000, 2)  # a broad filter takes the graph path
    hits = top_ids(index.search(data[[0]], 10, allowed_ids=allowed))[0]
    assert len(hits) == 10 and all(i % 2 == 0 for i in hits)


def test_keyword_index_finds_a_rare_term_and_honours_a_filter(tmp_path):
    texts = ["the quick brown fox", "zyxquartz appears only here", "foxes run quickly", "nothing relevant"]
    keywords = KeywordIndex.build(np.array([40, 10, 30, 20]), texts)
    assert top_ids(keywords.search(["zyxquartz"], 5)) == [[10]]
    assert set(top_ids(keywords.search(["fox"], 5))[0]) == {40, 30}  # stemmed: fox, foxes
    assert top_ids(keywords.search(["fox"], 5, allowed_ids=np.array([30]))) == [[30]]
    assert keywords.search(["the"], 5) == [[]]  # a stop word matches nothing
    keywords.save(tmp_path / "kw")
    assert top_ids(KeywordIndex.load(tmp_path / "kw").search(["zyxquartz"], 5)) == [[10]]


def test_a_filter_naming_ids_the_index_lacks_is_answered_from_those_it_holds(monkeypatch):
    index, data = hnsw(300, seed=12)
    # 5000, 5001: rows written after the index was built (an ingest still running).
    assert top_ids(index.search(data[[4]], 3, allowed_ids=np.array([4, 5000, 5001]))) == [[4]]
    monkeypatch.setattr("app.search.vector_index.EXACT_BATCH", 7)  # exact scoring in small slices
    exact = top_ids(index.search(data[[9]], 5, allowed_ids=np.arange(0, 300, 3)))[0]
    flat = VectorIndex(DIM)
    flat.add(np.arange(300), data)
    assert exact == top_ids(flat.search(data[[9]], 5, allowed_ids=np.arange(0, 300, 3)))[0]


def test_a_keyword_index_over_stop_words_only_is_empty_not_an_error():
    keywords = KeywordIndex.build(np.array([1, 2]), ["to be or not to be", "1 2 3"])
    assert keywords.search(["to be"], 5) == [[]]


def saved_collection(store: IndexStore, key: str, seed: int, n: int = 300) -> CollectionIndex:
    index = VectorIndex(DIM)
    index.add(np.arange(n), vectors(n, seed=seed))
    saved = bundle(1, index)
    store.save(key, saved)
    return saved


def test_the_store_keeps_the_most_recently_searched_within_its_budget_and_reloads_the_others(tmp_path):
    writer = IndexStore(tmp_path, DIM)
    sizes = [saved_collection(writer, key, seed).nbytes() for seed, key in enumerate("abc")]
    assert all(size > DIM * 4 * 300 for size in sizes)  # the vectors, at least
    store = IndexStore(tmp_path, DIM, budget_bytes=sizes[0] + sizes[1] + sizes[2] // 2)
    queries = vectors(3, seed=9)
    first = {key: top_ids(store.get(key, 1).vectors.search(queries, 5)) for key in "abc"}
    assert store.cached_keys() == ["b", "c"] and store.cached_bytes <= store.budget_bytes

    store.get("b", 1)  # b is now the most recent: a's return pushes c out
    again = store.get("a", 1)
    assert store.cached_keys() == ["b", "a"] and store.cached_bytes <= store.budget_bytes
    assert top_ids(again.vectors.search(queries, 5)) == first["a"]


def test_one_collection_larger_than_the_budget_is_still_served_alone(tmp_path):
    writer = IndexStore(tmp_path, DIM)
    saved_collection(writer, "small", seed=1, n=10)
    saved_collection(writer, "large", seed=2, n=500)
    store = IndexStore(tmp_path, DIM, budget_bytes=1000)
    assert store.get("small", 1) is not None
    assert store.get("large", 1).vectors.size == 500
    assert store.cached_keys() == ["large"]


def test_a_document_map_counts_in_the_budget_of_its_generation(tmp_path):
    writer = IndexStore(tmp_path, DIM)
    saved_collection(writer, "a", seed=1)
    store = IndexStore(tmp_path, DIM)
    before = store.get("a", 1).nbytes()
    documents = DocumentMap(np.arange(300), np.arange(300) // 3, [f"doc-{i}" for i in range(100)], [{}] * 100)
    store.attach_documents("a", 2, documents)  # not the generation in memory: not kept
    assert store.documents("a", 1) is None
    store.attach_documents("a", 1, documents)
    assert store.documents("a", 1) is documents and store.cached_bytes == before + documents.nbytes()
