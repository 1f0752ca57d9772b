"""FAISS index store: persistence, reload by generation, atomic files."""

from __future__ import annotations

import numpy as np
import pytest

from app.search.index_store import IndexStore, VectorIndex

DIM = 16


def vectors(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, DIM)).astype("float32")
    return x / np.linalg.norm(x, axis=1, keepdims=True)


def test_add_persist_reload_in_a_fresh_store_gives_the_same_results(tmp_path):
    index = VectorIndex(DIM)
    data = vectors(200, seed=1)
    index.add(np.arange(1000, 1200), data)
    queries = vectors(5, seed=2)
    before = index.search(queries, 10)

    IndexStore(tmp_path, DIM).save("coll", 1, index)
    reloaded = IndexStore(tmp_path, DIM).get("coll", 1)

    assert reloaded is not None and reloaded is not index
    assert reloaded.size == 200
    after = reloaded.search(queries, 10)
    assert [[i for i, _ in row] for row in after] == [[i for i, _ in row] for row in before]
    assert np.allclose([[s for _, s in row] for row in after], [[s for _, s in row] for row in before])


def test_a_vector_finds_itself_first_with_its_id(tmp_path):
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
    writer.save("coll", 1, first)
    assert reader.get("coll", 1).size == 10
    assert reader.get("coll", 1) is reader.get("coll", 1)  # cached while unchanged

    second = VectorIndex(DIM)
    second.add(np.arange(25), vectors(25, seed=5))
    writer.save("coll", 2, second)
    assert reader.get("coll", 2).size == 25


def test_old_generations_are_pruned_and_missing_ones_report_none(tmp_path):
    store = IndexStore(tmp_path, DIM)
    for generation in (1, 2, 3, 4):
        index = VectorIndex(DIM)
        index.add(np.arange(generation), vectors(generation, seed=generation))
        store.save("coll", generation, index)
    files = sorted(p.name for p in (tmp_path / "coll").iterdir())
    assert files == ["gen-3.faiss", "gen-4.faiss"]  # no temp files left behind
    assert IndexStore(tmp_path, DIM).get("coll", 1) is None
    assert IndexStore(tmp_path, DIM).get("other", 0).size == 0


def test_adding_an_id_again_replaces_its_vector(tmp_path):
    index = VectorIndex(DIM)
    data = vectors(3, seed=6)
    index.add(np.array([1, 2, 3]), data)
    index.add(np.array([2]), data[[0]])
    assert index.size == 3
    hits = index.search(data[[0]], 3)[0]
    assert sorted(i for i, s in hits if s > 0.9999) == [1, 2]


def test_search_can_be_restricted_to_allowed_ids(tmp_path):
    index = VectorIndex(DIM)
    data = vectors(30, seed=7)
    index.add(np.arange(30), data)
    hits = index.search(data[[0]], 5, allowed_ids=np.array([3, 4]))[0]
    assert sorted(i for i, _ in hits) == [3, 4]
    assert index.search(data[[0]], 5, allowed_ids=np.array([], dtype="int64")) == [[]]
    assert index.remove(np.array([0, 1])) == 2 and index.size == 28
