"""An ingest that is the only one embedding on its host uses every core; a
second one sends both back to their pool share; a finished ingest leaves
its process at its share for the searches that follow. A pool process
starts at its share for torch and FAISS alike."""

from __future__ import annotations

import os

import faiss
import pytest
import torch

from app.services.handlers import embedding_threads
from workers import signals

CORES = os.cpu_count() or 1
pytestmark = pytest.mark.skipif(CORES < 2, reason="one core: every share is the whole machine")


@pytest.fixture(autouse=True)
def pool_of_the_cores(runtime, with_settings):
    """A pool with a process per core (the default), so the share is one core."""
    with_settings(worker_concurrency=CORES, worker_cpus=CORES)
    runtime_redis = embedding_threads.redis_store.client
    runtime_redis.delete(embedding_threads.claims_key())
    yield
    runtime_redis.delete(embedding_threads.claims_key())
    torch.set_num_threads(1)


def test_a_lone_ingest_embeds_on_every_core_and_gives_them_back(runtime):
    with embedding_threads.ingest_embedding("ingest-a"):
        embedding_threads.before_batch("ingest-a")
        assert torch.get_num_threads() == CORES
    assert torch.get_num_threads() == 1


def test_two_ingests_on_a_host_keep_to_their_share(runtime):
    with embedding_threads.ingest_embedding("ingest-a"):
        embedding_threads.before_batch("ingest-a")
        with embedding_threads.ingest_embedding("ingest-b"):
            embedding_threads.before_batch("ingest-b")
            assert torch.get_num_threads() == 1
            embedding_threads.before_batch("ingest-a")  # a's next batch
            assert torch.get_num_threads() == 1
        embedding_threads.before_batch("ingest-a")  # b finished: a has the machine again
        assert torch.get_num_threads() == CORES


def test_a_pool_process_starts_with_its_share_for_torch_and_faiss():
    """Each runs its own thread pool: left at one thread per core, FAISS's
    would spin on the cores the other pool processes encode on."""
    before = faiss.omp_get_max_threads()
    try:
        faiss.omp_set_num_threads(CORES)
        signals._ready_the_child()
        assert (torch.get_num_threads(), faiss.omp_get_max_threads()) == (1, 1)
    finally:
        faiss.omp_set_num_threads(before)
