"""What workers run: each job kind's handler (named in the registry,
app/services/jobs/kinds.py) and what only handlers need — the embedding
model, the FAISS and BM25 indexes, the ranking loop.

The web process never imports this package (tests/unit/test_layout.py
checks that importing `wsgi` loads no FAISS, bm25s or torch): the web half
of each job kind is its submit function in app/services/.
"""
