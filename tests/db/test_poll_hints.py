"""A queued or running job's poll hint comes from how long recent jobs of its
type took from submit to success, never below the type's floor."""

from __future__ import annotations

import time

import pytest

from app.extensions import redis_store
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
        return jobs.job_to_dict(job)["poll_after_ms"], jobs.retry_after_seconds(job.type)


def _run_taking(db, job_type: str, seconds: float) -> None:
    job_id = _submit(db, job_type)
    assert jobs.run(job_id, handler=lambda ctx: time.sleep(seconds) or {}) == "succeeded"


def test_before_any_job_finished_the_kinds_own_hint_applies(fresh_hints):
    assert _hint(fresh_hints, _submit(fresh_hints, "search")) == (200, 1)


def test_the_hint_is_the_median_time_recent_jobs_took(fresh_hints):
    for seconds in (0.3, 0.6, 0.9):
        _run_taking(fresh_hints, "search", seconds)
    poll_after_ms, retry_after = _hint(fresh_hints, _submit(fresh_hints, "search"))
    assert 600 <= poll_after_ms < 900
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
    assert _hint(fresh_hints, _submit(fresh_hints, "search"))[0] == 200
