"""A queued or running job's poll hint comes from how long recent jobs of its
type took from submit to success, never below the type's floor: a job
younger than that is next polled when it should be done, an older one after
half its age, so a slow job costs a few polls."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import update

from app.extensions import redis_store
from app.models import Job, utcnow
from app.services import jobs
from app.services.errors import JobFailure
from app.services.jobs import poll_hints
from app.services.keys import SCOPES, Principal

PRINCIPAL = Principal("default", "poll-hints-key", frozenset(SCOPES), "enterprise")


@pytest.fixture
def fresh_hints(runtime, monkeypatch):
    monkeypatch.setattr(poll_hints, "REFRESH_SECONDS", 0.0)
    redis_store.client.delete(*(f"quarry:job-durations:{t}" for t in jobs.KINDS))
    return runtime


def _submit(db, job_type: str) -> str:
    with db.session_scope() as session:
        return jobs.submit(session, PRINCIPAL, job_type, params={}, total=1).id


def _hint(db, job_id: str) -> tuple[int, int]:
    """The queued job's poll_after_ms, and Retry-After in whole seconds."""
    with db.session_scope() as session:
        job = jobs.get_job(session, PRINCIPAL.tenant_id, job_id)
        return jobs.job_to_dict(job)["poll_after_ms"], jobs.retry_after_seconds(job.type, job.created_at)


def _submitted_ago(db, job_type: str, ms: float) -> str:
    """A queued job whose submit was `ms` ago."""
    job_id = _submit(db, job_type)
    _age(db, job_id, ms)
    return job_id


def _age(db, job_id: str, ms: float) -> None:
    """Make the job's submit `ms` ago."""
    with db.session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(created_at=utcnow() - timedelta(milliseconds=ms)))
        session.commit()


def _run_taking(db, job_type: str, seconds: float) -> None:
    job_id = _submit(db, job_type)
    assert jobs.run(job_id, handler=lambda ctx: time.sleep(seconds) or {}) == "succeeded"


def test_before_any_job_finished_the_kinds_own_hint_applies(fresh_hints):
    poll_after_ms, retry_after = _hint(fresh_hints, _submitted_ago(fresh_hints, "search", 0))
    assert 150 <= poll_after_ms <= 200  # less the milliseconds since the submit
    assert retry_after == 1


def test_the_hint_is_the_time_three_recent_jobs_in_four_took(fresh_hints):
    for seconds in (0.2, 0.2, 0.9, 0.9):
        _run_taking(fresh_hints, "search", seconds)
    poll_after_ms, retry_after = _hint(fresh_hints, _submitted_ago(fresh_hints, "search", 0))
    # Not the median (about 550 ms): by 900 ms (and the runs' own overhead) three in four were done.
    assert 850 <= poll_after_ms < 1200
    assert retry_after == 1


def test_an_ingest_hint_is_never_below_one_second(fresh_hints):
    for _ in range(3):
        _run_taking(fresh_hints, "ingest", 0.0)
    assert _hint(fresh_hints, _submit(fresh_hints, "ingest")) == (1000, 1)


def test_a_failed_job_teaches_nothing(fresh_hints):
    job_id = _submit(fresh_hints, "search")

    def fail(ctx):
        time.sleep(0.5)
        raise JobFailure("bad", "no")

    jobs.run(job_id, handler=fail)
    assert 150 <= _hint(fresh_hints, _submitted_ago(fresh_hints, "search", 0))[0] <= 200


def test_a_job_younger_than_the_typical_time_is_next_polled_when_it_should_be_done(fresh_hints):
    for seconds in (0.3, 0.6, 0.6, 0.9):
        _run_taking(fresh_hints, "search", seconds)
    poll_after_ms, _ = _hint(fresh_hints, _submitted_ago(fresh_hints, "search", 250))
    # The typical time is 600-900 ms (the runs' own overhead adds a little): what is left of it.
    assert 300 <= poll_after_ms < 700


def test_a_job_past_the_typical_time_is_next_polled_after_half_its_age(fresh_hints):
    for seconds in (0.3, 0.3, 0.3):
        _run_taking(fresh_hints, "search", seconds)
    poll_after_ms, retry_after = _hint(fresh_hints, _submitted_ago(fresh_hints, "search", 5000))
    assert 2500 <= poll_after_ms < 2600
    assert retry_after == 3


def test_a_client_following_the_hints_polls_a_slow_job_a_few_times(fresh_hints):
    """A job twenty times slower than usual (a queue formed): polls at the
    typical time, then at half the age each time, not one per typical time."""
    for seconds in (0.1, 0.1, 0.1):
        _run_taking(fresh_hints, "search", seconds)
    job_id = _submit(fresh_hints, "search")
    finishes_at_ms, age_ms, polls = 2000.0, 0.0, 0
    while age_ms < finishes_at_ms:
        _age(fresh_hints, job_id, age_ms)
        age_ms += _hint(fresh_hints, job_id)[0]
        polls += 1
    assert polls <= 10  # one per typical time would be about 20
    assert age_ms <= 1.5 * finishes_at_ms + 50  # seen at most half its age late
