"""Chunk boundaries and overlap, measured in the real model's tokens."""

from __future__ import annotations

import pytest
from transformers import AutoTokenizer

from app.search.chunking import chunk_text
from app.search.embedding import resolve_model_path


@pytest.fixture(scope="module")
def tokenizer():
    return AutoTokenizer.from_pretrained(str(resolve_model_path("all-MiniLM-L6-v2")))


def n_tokens(tokenizer, text: str) -> int:
    return len(tokenizer(text, add_special_tokens=False)["input_ids"])


LONG = " ".join(
    f"Sentence {i} talks about photosynthesis, mitochondria and unbelievably long words." for i in range(60)
)


def test_short_text_is_one_chunk_equal_to_the_text(tokenizer):
    chunks = chunk_text("  Honey bees make honey.  ", tokenizer, size=50, overlap=10)
    assert [c.text for c in chunks] == ["Honey bees make honey."]
    assert (chunks[0].start, chunks[0].end) == (2, 24)


def test_blank_text_has_no_chunks(tokenizer):
    assert chunk_text(" \n\t ", tokenizer, size=50, overlap=10) == []


def test_windows_respect_the_size_and_cover_the_whole_text(tokenizer):
    chunks = chunk_text(LONG, tokenizer, size=64, overlap=16)
    assert len(chunks) > 5
    assert all(n_tokens(tokenizer, c.text) <= 64 for c in chunks)
    assert chunks[0].start == 0
    assert chunks[-1].end == len(LONG)
    # Offsets point back into the source.
    assert all(LONG[c.start : c.end] == c.text for c in chunks)
    # Every character is in some chunk: no gaps between windows.
    for before, after in zip(chunks, chunks[1:]):
        assert after.start < before.end


def test_consecutive_windows_overlap_by_about_the_overlap(tokenizer):
    chunks = chunk_text(LONG, tokenizer, size=64, overlap=16)
    for before, after in zip(chunks, chunks[1:-1]):
        shared = LONG[after.start : before.end]
        # Snapping to word starts may add a token or two, never remove the overlap.
        assert 16 <= n_tokens(tokenizer, shared) <= 16 + 8


def test_no_overlap_means_adjacent_windows(tokenizer):
    chunks = chunk_text(LONG, tokenizer, size=40, overlap=0)
    for before, after in zip(chunks, chunks[1:]):
        assert LONG[before.end : after.start].strip() == ""


def test_words_are_never_cut(tokenizer):
    chunks = chunk_text(LONG, tokenizer, size=33, overlap=7)
    for chunk in chunks:
        assert chunk.start == 0 or LONG[chunk.start - 1] == " "
        assert chunk.end == len(LONG) or not LONG[chunk.end].isalnum()


def test_a_word_longer_than_a_window_is_still_chunked(tokenizer):
    # One 91-character "word" of many word pieces (BERT gives up at 100).
    text = "x" + "qzj" * 30
    assert n_tokens(tokenizer, text) > 16
    chunks = chunk_text(text, tokenizer, size=8, overlap=2)
    assert len(chunks) > 1
    assert chunks[0].start == 0 and chunks[-1].end == len(text)


@pytest.mark.parametrize("size,overlap", [(0, 0), (10, 10), (10, -1)])
def test_invalid_sizes_are_refused(tokenizer, size, overlap):
    with pytest.raises(ValueError):
        chunk_text("some text", tokenizer, size=size, overlap=overlap)


@pytest.mark.parametrize("text", ["\u200b", "\x01\x02", "\u200b \u200b"])
def test_text_without_a_single_token_is_no_chunk(tokenizer, text):
    assert chunk_text(text, tokenizer, size=50, overlap=10) == []
