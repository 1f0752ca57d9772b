"""Extractive answers: the sentences of the top hits closest to the query,
each cited by its document and chunk. Nothing is generated; the bundled
embedding model only ranks sentences that are already there."""

from __future__ import annotations

import re
from typing import Any

from app.search.pipelines import QueryEncoder

# A sentence ends at . ! or ? followed by space and what can start a sentence.
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[A-Z0-9])")
FROM_HITS = 5
SENTENCES = 3


def split_sentences(text: str) -> list[str]:
    return [s.strip() for s in _SENTENCE_END.split(text) if len(s.strip()) > 1]


def extractive_answer(query: str, hits: list[dict[str, Any]], encoder: QueryEncoder) -> dict[str, Any] | None:
    """`{"text", "citations": [{"text", "document_id", "chunk_id", "score"}]}`
    from the first FROM_HITS hits; None when there are no hits."""
    candidates = [(sentence, hit) for hit in hits[:FROM_HITS] for sentence in split_sentences(hit["text"])]
    if not candidates:
        return None
    vectors = encoder.encode([query] + [sentence for sentence, _ in candidates])
    scores = vectors[1:] @ vectors[0]
    best = sorted(range(len(candidates)), key=lambda i: (-scores[i], i))[:SENTENCES]
    citations = [
        {
            "text": candidates[i][0],
            "document_id": candidates[i][1]["document_id"],
            "chunk_id": candidates[i][1]["chunk_id"],
            "score": round(float(scores[i]), 6),
        }
        for i in best
    ]
    return {"text": " ".join(c["text"] for c in citations), "citations": citations}
