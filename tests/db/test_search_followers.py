"""An identical search already running in another worker is followed, not
waited for: the later job is recorded as the leader's follower, its worker
is free at once, and the leader's final transition() finishes it. A leader
that dies or fails leaves its followers to run again, never stuck.
Real model, database and Redis, in this process; "two workers" are two
threads calling the runner as two worker processes would."""

from __future__ import annotations

import threading
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app.models import Collection, Job
from app.services import jobs, staging
from app.services.handlers import search as search_handler
from app.services.keys import SCOPES, Principal

PRINCIPAL = Principal("default", "followers-key", frozenset(SCOPES), "enterprise")
DOCUMENTS = [
    {"id": "volcano", "text": "Volcanoes erupt molten rock called lava and ash."},
    {"id": "bees", "text": "Honey bees collect nectar from flowers to make honey."},
    {"id": "tides", "text": "Ocean tides follow the gravitational pull of the moon."},
]
# Long enough for a waiting worker to show; far shorter than the old 30 s wait.
PROMPT_SECONDS = 5


@pytest.fixture(scope="module")
def collection(runtime) -> str:
    name = f"followers-{uuid.uuid4().hex[:8]}"
    with runtime.session_scope() as session:
        job_id = staging.submit_documents(session, PRINCIPAL, name, DOCUMENTS).id
    assert jobs.run(job_id) == "succeeded"
    return name


@pytest.fixture(autouse=True)
def no_other_waiting_searches(runtime):
    """Other modules' tests may leave search jobs queued; a batch would take them."""
    with runtime.session_scope() as session:
        for job_id in session.scalars(select(Job.id).where(Job.status == "queued", Job.type == "search")).all():
            jobs.transition(session, job_id, jobs.JobStatus.CANCELLED)
        session.commit()


class SlowSearches:
    """Wraps the pipeline call: counts computations, and holds the first one
    (the leader's) until `let_go()`, so another worker can meet it running."""

    def __init__(self, original) -> None:
        self.original = original
        self.computed: list[list[str]] = []
        self.leader_computing = threading.Event()
        self._go = threading.Event()
        self.fail_leader: BaseException | None = None

    def __call__(self, index, collection_id, queries, params):
        first = not self.leader_computing.is_set()
        if first:
            self.leader_computing.set()
            assert self._go.wait(60), "the test never let the leader go"
            if self.fail_leader is not None:
                raise self.fail_leader
        self.computed.append(list(queries))
        return self.original(index, collection_id, queries, params)

    def let_go(self) -> None:
        self._go.set()


@pytest.fixture
def slow(monkeypatch) -> Iterator[SlowSearches]:
    wrapper = SlowSearches(search_handler.search_collection)
    monkeypatch.setattr(search_handler, "search_collection", wrapper)
    yield wrapper
    wrapper.let_go()


def _search(query: str) -> dict:
    return {"query": query, "pipeline": "hybrid", "top_k": 2, "filters": {}}


def _submit(runtime, collection: str, params: dict) -> str:
    with runtime.session_scope() as session:
        target = session.scalars(select(Collection).where(Collection.name == collection)).one()
        return jobs.submit(session, PRINCIPAL, "search", collection=target, params=params).id


def _job(runtime, job_id: str) -> Job:
    with runtime.session_scope() as session:
        return session.get(Job, job_id)


class Worker(threading.Thread):
    """One job's message, handled as a worker process would."""

    def __init__(self, job_id: str, runner=jobs.run_job) -> None:
        super().__init__(daemon=True)
        self.job_id, self.runner = job_id, runner
        self.status: str | None = None
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.status = (
                self.runner(self.job_id, "search") if self.runner is jobs.run_job else self.runner(self.job_id)
            )
        except BaseException as exc:  # reported by the test, not lost in the thread
            self.error = exc


def _leader_running(runtime, collection: str, slow: SlowSearches, query: str) -> tuple[str, Worker]:
    leader_id = _submit(runtime, collection, _search(query))
    leader = Worker(leader_id)
    leader.start()
    assert slow.leader_computing.wait(30)
    return leader_id, leader


@pytest.mark.parametrize("runner", [jobs.run_job, jobs.run], ids=["batched", "alone"])
def test_an_identical_search_running_elsewhere_is_followed_without_holding_a_worker(runtime, collection, slow, runner):
    query = f"molten rock {uuid.uuid4().hex[:6]}"
    leader_id, leader = _leader_running(runtime, collection, slow, query)
    follower_id = _submit(runtime, collection, _search(query))
    follower = Worker(follower_id, runner)
    follower.start()
    follower.join(PROMPT_SECONDS)
    try:
        assert not follower.is_alive(), "the second worker waited for the first one's answer"
        assert follower.error is None
        assert _job(runtime, follower_id).status == "running"  # finished by its leader, not by this worker
    finally:
        slow.let_go()
        leader.join(60)
        follower.join(60)
    assert leader.status == "succeeded"
    computed, followed = _job(runtime, leader_id), _job(runtime, follower_id)
    assert (computed.status, followed.status) == ("succeeded", "succeeded")
    assert (computed.result["cached"], followed.result["cached"]) == (False, True)
    assert followed.result["hits"] == computed.result["hits"]
    assert slow.computed == [[query]]  # computed once
