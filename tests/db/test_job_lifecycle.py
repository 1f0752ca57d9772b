"""Job state transitions are conditional: one runner at a time, finished jobs
stay finished, dead workers' jobs are taken over. Runs on SQLite and, with
TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from app.models import Job, utcnow
from app.services import jobs
from app.services.errors import JobFailure


@pytest.fixture
def db(runtime):
    return runtime


def new_job(db, job_type="search") -> str:
    with db.session_scope() as session:
        return jobs.create_job(session, tenant_id="default", job_type=job_type, params={}, total=1).id


def read(db, job_id: str) -> Job:
    with db.session_scope() as session:
        return session.get(Job, job_id)


def change(db, job_id: str, **values) -> None:
    with db.session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(**values))
        session.commit()


def claim(db, job_id: str, owner: str) -> Job | None:
    with db.session_scope() as session:
        return jobs.claim(session, job_id, owner, lease_seconds=60)


def test_a_claimed_job_cannot_be_claimed_again_while_its_lease_lives(db):
    job_id = new_job(db)
    assert claim(db, job_id, "worker-a").status == "running"
    with pytest.raises(jobs.JobBusy) as busy:
        claim(db, job_id, "worker-b")
    assert 1 <= busy.value.retry_after <= 61
    assert read(db, job_id).lease_owner == "worker-a"


def test_an_expired_lease_is_taken_over_and_the_old_owner_is_locked_out(db):
    job_id = new_job(db)
    claim(db, job_id, "worker-a")
    change(db, job_id, lease_expires_at=utcnow() - timedelta(seconds=1))

    taken = claim(db, job_id, "worker-b")
    assert taken.lease_owner == "worker-b" and taken.attempts == 2

    stale = jobs.JobContext(job_id, "worker-a", "default", "search", {}, None, 60)
    with pytest.raises(jobs.JobStopped):
        stale.checkpoint(1)
    with db.session_scope() as session:
        assert not jobs._finish(
            session, job_id, status="succeeded", from_statuses=("running",), owner="worker-a"
        )
    job = read(db, job_id)
    assert job.status == "running" and job.lease_owner == "worker-b"


def test_finished_and_unknown_jobs_are_not_run(db):
    job_id = new_job(db)
    assert jobs.run(job_id, lambda ctx: {"ok": True}) == "succeeded"
    assert jobs.run(job_id, lambda ctx: pytest.fail("ran a finished job")) == "skipped"
    assert jobs.run("no-such-job", lambda ctx: pytest.fail("ran an unknown job")) == "skipped"


def test_run_records_result_progress_and_times(db):
    job_id = new_job(db)

    def handler(ctx):
        ctx.checkpoint(1)
        return {"answer": 42}

    assert jobs.run(job_id, handler) == "succeeded"
    done = read(db, job_id)
    assert done.status == "succeeded" and done.result == {"answer": 42}
    assert done.progress_processed == done.progress_total == 1
    assert done.started_at <= done.finished_at
    assert done.lease_owner is None


def test_run_records_failures_with_a_code_and_never_a_traceback(db):
    expected, crashed = new_job(db), new_job(db)

    def fails(ctx):
        raise JobFailure("not_found", "The collection was deleted.")

    def crashes(ctx):
        raise RuntimeError("secret internals")

    assert jobs.run(expected, fails) == "failed"
    assert jobs.run(crashed, crashes) == "failed"
    failed = read(db, expected)
    assert (failed.status, failed.error_code, failed.error_message) == (
        "failed", "not_found", "The collection was deleted.",
    )
    crash = read(db, crashed)
    assert crash.error_code == "internal_error" and "secret" not in crash.error_message


def test_a_job_whose_worker_keeps_dying_is_failed_not_retried_forever(db):
    job_id = new_job(db)
    change(
        db, job_id, status="running", attempts=jobs.MAX_ATTEMPTS,
        lease_expires_at=utcnow() - timedelta(seconds=1),
    )
    assert jobs.run(job_id, lambda ctx: pytest.fail("ran again")) == "skipped"
    assert read(db, job_id).status == "failed"


def test_recovery_resends_jobs_whose_worker_died(db, redis_server):
    client = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/1")
    client.delete("ingest")
    dead, alive = new_job(db, "ingest"), new_job(db, "ingest")
    long_ago = utcnow() - timedelta(minutes=10)
    change(db, dead, status="running", lease_expires_at=long_ago, updated_at=long_ago)
    change(db, alive, status="running", lease_expires_at=utcnow() + timedelta(minutes=1))

    with db.session_scope() as session:
        resent = jobs.recover_stuck_jobs(session)
    assert dead in resent and alive not in resent
    assert client.llen("ingest") == 1
    with db.session_scope() as session:  # not again on the very next sweep
        assert dead not in jobs.recover_stuck_jobs(session)
