"""Token-aware chunking: windows of at most `size` model tokens that overlap by
about `overlap` tokens and never cut a word in half."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol


class Tokenizer(Protocol):  # the call signature of a Hugging Face fast tokenizer
    def __call__(self, text: str, **kwargs): ...


@dataclass(frozen=True)
class TextChunk:
    text: str
    start: int  # character offsets into the source text
    end: int


def chunk_text(text: str, tokenizer: Tokenizer, size: int, overlap: int) -> list[TextChunk]:
    if size < 1:
        raise ValueError("chunk size must be at least 1 token")
    if not 0 <= overlap < size:
        raise ValueError("chunk overlap must be at least 0 and smaller than the chunk size")
    if not text.strip():
        return []
    # verbose=False: a long text is meant to exceed the model's input size here.
    encoding = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True, verbose=False)
    offsets: Sequence[tuple[int, int]] = encoding["offset_mapping"]
    word_ids: Sequence[int | None] = encoding.word_ids()
    n = len(offsets)
    if n == 0:  # only characters the tokenizer drops (zero-width, control)
        return []
    if n <= size:
        return [_span(text, offsets[0][0], offsets[-1][1])]

    def word_start(i: int) -> int:
        """The first token of the word that token i belongs to."""
        while i > 0 and word_ids[i] is not None and word_ids[i - 1] == word_ids[i]:
            i -= 1
        return i

    chunks: list[TextChunk] = []
    start = 0
    while True:
        end = min(start + size, n)
        if end < n:
            # Do not split a word across windows, unless the word alone is
            # longer than a window.
            snapped = word_start(end)
            if snapped > start:
                end = snapped
        chunks.append(_span(text, offsets[start][0], offsets[end - 1][1]))
        if end >= n:
            return chunks
        next_start = word_start(max(end - overlap, start + 1))
        start = next_start if next_start > start else end


def _span(text: str, start: int, end: int) -> TextChunk:
    return TextChunk(text=text[start:end], start=start, end=end)
