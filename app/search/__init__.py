"""Search core: text extraction, chunking, embedding, FAISS index store and
pipelines. Nothing here knows about HTTP, Flask or Celery."""
