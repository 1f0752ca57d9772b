"""An identical search already running in another worker is followed, not
waited for: the later job is recorded as the leader's follower, its worker
is free at once, and the leader's final transition() finishes it. A leader
that dies or fails leaves its followers to run again, never stuck.
Real model, database and Redis, in this process; "two workers" are two
threads calling the runner as two worker processes would."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import timedelta

import pytest
from sqlalchemy import select, update

from app.extensions import settings
from app.models import Collection, Job, WebhookDelivery, utcnow
from app.services import jobs, search_cache, staging
from app.services.handlers import search as search_handler
from app.services.jobs import JobStatus, following
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


def _search(query: str, **extra) -> dict:
    return {"query": query, "pipeline": "hybrid", "top_k": 2, "filters": {}, **extra}


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
def test_an_identical_search_running_elsewhere_is_followed_without_holding_a_worker(
    runtime, collection, slow, runner, with_settings
):
    with_settings(webhook_allow_private_networks=True)
    query = f"molten rock {uuid.uuid4().hex[:6]}"
    leader_id, leader = _leader_running(runtime, collection, slow, query)
    follower_id = _submit(runtime, collection, _search(query, callback_url="http://127.0.0.1:9/hook"))
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
    # Finished through transition(), with the events of any finished job.
    assert _events(runtime, follower_id) == ["job.succeeded"]


def _events(runtime, job_id: str) -> list[str]:
    with runtime.session_scope() as session:
        return list(session.scalars(select(WebhookDelivery.event_type).where(WebhookDelivery.job_id == job_id)))


def _following(runtime, leader_id: str) -> list[str]:
    with runtime.session_scope() as session:
        return list(session.scalars(select(Job.id).where(Job.follows_job_id == leader_id, Job.status == "running")))


def _expire_leases(runtime, *job_ids: str) -> None:
    """What a dead worker leaves: leases run out and not renewed since."""
    past = utcnow() - timedelta(seconds=settings.job_lease_seconds + 1)
    with runtime.session_scope() as session:
        session.execute(update(Job).where(Job.id.in_(job_ids)).values(lease_expires_at=past, updated_at=past))
        session.commit()


def _mark_key(runtime, collection: str, params: dict) -> str:
    with runtime.session_scope() as session:
        target = session.scalars(select(Collection).where(Collection.name == collection)).one()
        return search_cache.cache_key(target.id, target.generation, params)


def test_only_the_job_holding_an_in_flight_mark_releases_it(runtime):
    key = f"quarry:search-cache:test-{uuid.uuid4().hex}"
    assert search_cache.claim_inflight(key, "leader") is None
    assert search_cache.claim_inflight(key, "leader") is None  # its own, again (a re-run)
    search_cache.release_inflight(key, "another")  # say, one whose own mark ran out
    assert search_cache.claim_inflight(key, "another") == "leader"
    search_cache.release_inflight(key, "leader")
    assert search_cache.claim_inflight(key, "another") is None


@pytest.mark.parametrize("first_resent", ["leader", "follower"])
def test_a_leader_whose_worker_dies_leaves_its_followers_recovered(
    runtime, collection, slow, monkeypatch, first_resent
):
    query = f"honey {uuid.uuid4().hex[:6]}"
    leader_id, leader = _leader_running(runtime, collection, slow, query)
    follower_id = _submit(runtime, collection, _search(query))
    assert jobs.run_job(follower_id, "search") == "following"
    slow.fail_leader = SystemExit("the leader's pool process is killed")
    slow.let_go()
    leader.join(60)
    assert isinstance(leader.error, SystemExit)
    # A killed process releases nothing: its mark stays until it runs out.
    assert search_cache.claim_inflight(_mark_key(runtime, collection, _search(query)), leader_id) is None
    assert [_job(runtime, job_id).status for job_id in (leader_id, follower_id)] == ["running", "running"]

    _expire_leases(runtime, leader_id, follower_id)
    monkeypatch.setattr("app.services.jobs.housekeeping.send_job", lambda *args, **kwargs: None)
    with runtime.session_scope() as session:
        assert set(jobs.recover_stuck_jobs(session)) >= {leader_id, follower_id}
    resent = [leader_id, follower_id] if first_resent == "leader" else [follower_id, leader_id]
    statuses = [jobs.run_job(job_id, "search") for job_id in resent]

    finished = {job_id: _job(runtime, job_id) for job_id in (leader_id, follower_id)}
    assert [job.status for job in finished.values()] == ["succeeded", "succeeded"]
    assert finished[leader_id].attempts == 2
    assert finished[leader_id].result["hits"] == finished[follower_id].result["hits"]
    if first_resent == "leader":  # the re-run leader finished its follower; the follower's message had nothing to do
        assert statuses == ["succeeded", "skipped"]
        assert (finished[leader_id].result["cached"], finished[follower_id].result["cached"]) == (False, True)
    else:  # the follower, re-run before its dead leader, does not follow it again: it computes
        assert statuses == ["succeeded", "succeeded"]
        assert (finished[leader_id].result["cached"], finished[follower_id].result["cached"]) == (True, False)
    assert slow.computed == [[query]]


def test_a_leader_that_fails_sends_its_followers_to_run_again(runtime, collection, slow, monkeypatch):
    sent: list[str] = []
    monkeypatch.setattr("app.services.jobs.transitions.send_job", lambda job_id, *args, **kwargs: sent.append(job_id))
    query = f"tides {uuid.uuid4().hex[:6]}"
    leader_id, leader = _leader_running(runtime, collection, slow, query)
    follower_ids = [_submit(runtime, collection, _search(query)) for _ in range(2)]
    assert jobs.run_job(follower_ids[0], "search") == "following"  # a batch of both
    assert sorted(_following(runtime, leader_id)) == sorted(follower_ids)
    slow.fail_leader = RuntimeError("the pipeline crashed")
    slow.let_go()
    leader.join(60)

    assert _job(runtime, leader_id).status == "failed"
    assert sorted(sent) == sorted(follower_ids)  # sent again, not failed with it
    for follower_id in follower_ids:
        job = _job(runtime, follower_id)
        assert (job.status, job.follows_job_id) == ("running", None)
        assert job.lease_expires_at <= utcnow()  # free to be claimed, or re-sent by recovery
    assert [jobs.run_job(job_id, "search") for job_id in sent] == ["succeeded", "succeeded"]  # their messages
    assert [_job(runtime, job_id).result["cached"] for job_id in sent] == [False, True]
    assert slow.computed == [[query]]  # once, by the first follower's own run


def test_a_leader_finishing_while_a_job_would_follow_it_is_never_missed(runtime):
    """The follow transaction waits for the leader's final one; it then sees
    the leader finished and does not follow (the job would wait forever)."""
    leader_id, follower_id = (_claimed(runtime, f"worker-{n}") for n in (1, 2))
    follower = jobs.JobContext.of(_job(runtime, follower_id), "worker-2")
    with runtime.session_scope() as session:
        jobs.transition(session, leader_id, JobStatus.SUCCEEDED, result={"hits": []})
        outcome: list[bool] = []
        attempt = threading.Thread(target=lambda: outcome.append(following.follow(leader_id, [follower])))
        attempt.start()
        time.sleep(0.5)
        assert attempt.is_alive() and not outcome  # waits on the leader's row
        session.commit()
    attempt.join(30)
    assert outcome == [False]
    assert _job(runtime, follower_id).follows_job_id is None


def _claimed(runtime, owner: str) -> str:
    with runtime.session_scope() as session:
        job_id = jobs.submit(session, PRINCIPAL, "search", params={}, total=1).id
        jobs.claim(session, job_id, owner, lease_seconds=60)
        return job_id


def test_a_following_job_is_cancelled_at_once(runtime, collection, slow):
    query = f"bees {uuid.uuid4().hex[:6]}"
    leader_id, leader = _leader_running(runtime, collection, slow, query)
    follower_id = _submit(runtime, collection, _search(query))
    assert jobs.run_job(follower_id, "search") == "following"
    with runtime.session_scope() as session:
        assert jobs.cancel_job(session, PRINCIPAL.tenant_id, follower_id).status == "cancelled"
    slow.let_go()
    leader.join(60)
    assert [_job(runtime, job_id).status for job_id in (leader_id, follower_id)] == ["succeeded", "cancelled"]
