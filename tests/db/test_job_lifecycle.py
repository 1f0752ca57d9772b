"""Job state transitions are conditional: one runner at a time, finished jobs
stay finished, dead workers' jobs are taken over, cancels stop a job at its
next checkpoint. Runs on SQLite and, with TEST_DATABASE_URL, on PostgreSQL."""

from __future__ import annotations

import dataclasses
import json
import threading
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
import redis
from sqlalchemy import update

from app.extensions import settings
from app.models import Job, utcnow
from app.services import jobs
from app.services.errors import Conflict, JobFailure, NotFound
from app.services.jobs import JobStatus
from app.services.keys import SCOPES, Principal

# Where kombu keeps ingest messages of the normal priority (5 rounds to step 3).
NORMAL_LIST = "ingest\x06\x163"
PRINCIPAL = Principal("default", "lifecycle-key", frozenset(SCOPES), "enterprise")


@pytest.fixture
def db(runtime):
    return runtime


def new_job(db, job_type="search") -> str:
    with db.session_scope() as session:
        return jobs.submit(session, PRINCIPAL, job_type, params={}, total=1).id


def read(db, job_id: str) -> Job:
    with db.session_scope() as session:
        return session.get(Job, job_id)


def expire_lease(db, job_id: str, **values) -> None:
    past = utcnow() - timedelta(seconds=1)
    with db.session_scope() as session:
        session.execute(update(Job).where(Job.id == job_id).values(lease_expires_at=past, **values))
        session.commit()


def claim(db, job_id: str, owner: str) -> Job | None:
    with db.session_scope() as session:
        return jobs.claim(session, job_id, owner, lease_seconds=60)


def finish(db, job_id: str, owner: str) -> bool:
    with db.session_scope() as session:
        moved = jobs.transition(session, job_id, JobStatus.SUCCEEDED, held_by=owner)
        session.commit()
        return moved


def test_a_claimed_job_cannot_be_claimed_again_while_its_lease_lives(db):
    job_id = new_job(db)
    assert claim(db, job_id, "worker-a").status == JobStatus.RUNNING
    with pytest.raises(jobs.JobBusy) as busy:
        claim(db, job_id, "worker-b")
    assert 1 <= busy.value.retry_after <= 61
    assert read(db, job_id).lease_owner == "worker-a"


def test_an_expired_lease_is_taken_over_and_the_old_owner_is_locked_out(db):
    job_id = new_job(db)
    claim(db, job_id, "worker-a")
    expire_lease(db, job_id)

    taken = claim(db, job_id, "worker-b")
    assert taken.lease_owner == "worker-b" and taken.attempts == 2

    stale = jobs.JobContext(job_id, "worker-a", "default", "search", {}, None, 60)
    with pytest.raises(jobs.JobStopped):
        stale.checkpoint(1)
    assert not finish(db, job_id, "worker-a")
    job = read(db, job_id)
    assert job.status == JobStatus.RUNNING and job.lease_owner == "worker-b"
    assert finish(db, job_id, "worker-b")
    assert read(db, job_id).status == JobStatus.SUCCEEDED


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
    assert done.status == JobStatus.SUCCEEDED and done.result == {"answer": 42}
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
        "failed",
        "not_found",
        "The collection was deleted.",
    )
    crash = read(db, crashed)
    assert crash.error_code == "internal_error" and "secret" not in crash.error_message


def test_a_job_whose_worker_keeps_dying_is_failed_not_retried_forever(db):
    job_id = new_job(db)
    for attempt in range(jobs.MAX_ATTEMPTS):
        claim(db, job_id, f"worker-{attempt}")
        expire_lease(db, job_id)
    assert jobs.run(job_id, lambda ctx: pytest.fail("ran again")) == "skipped"
    job = read(db, job_id)
    assert job.status == JobStatus.FAILED and job.attempts == jobs.MAX_ATTEMPTS


def test_recovery_resends_jobs_whose_worker_died_ahead_of_the_backlog(db, redis_server):
    client = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/1")
    client.flushdb()
    dead, alive = new_job(db, "ingest"), new_job(db, "ingest")
    claim(db, dead, "worker-a")
    claim(db, alive, "worker-b")
    long_ago = utcnow() - timedelta(minutes=10)
    expire_lease(db, dead, updated_at=long_ago)
    backlog = client.llen(NORMAL_LIST)  # the submits' own messages

    with db.session_scope() as session:
        resent = jobs.recover_stuck_jobs(session)
    assert dead in resent and alive not in resent
    # The re-sent message goes to the highest-priority list, which workers
    # take from before the backlog in the normal one.
    assert client.llen("ingest") == 1 and client.llen(NORMAL_LIST) == backlog == 2
    with db.session_scope() as session:  # not again on the very next sweep
        assert dead not in jobs.recover_stuck_jobs(session)


def test_a_queued_job_is_resent_only_when_its_queue_is_empty(db, redis_server):
    client = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/1")
    client.flushdb()
    waiting = new_job(db, "ingest")  # its message waits in the queue
    later = utcnow() + timedelta(seconds=settings.stuck_queued_seconds + 1)
    with db.session_scope() as session:
        assert waiting not in jobs.recover_stuck_jobs(session, now=later)
    client.flushdb()  # the message is lost (the broker lost its data)
    with db.session_scope() as session:
        assert waiting in jobs.recover_stuck_jobs(session, now=later)
    messages = [json.loads(raw)["headers"]["id"] for raw in client.lrange("ingest", 0, -1)]
    assert waiting in messages


def test_sweeps_that_overlap_re_send_each_lost_job_once(db, redis_server, monkeypatch):
    """Every worker sweeps, so two sweeps may both read the same lost jobs
    before either re-sends them; each job must still be re-sent once."""
    if db.engine.dialect.name == "sqlite":
        pytest.skip("SQLite runs one writing transaction at a time: two sweeps cannot overlap")
    client = redis.Redis.from_url(redis_server.url.rsplit("/", 1)[0] + "/1")
    client.flushdb()
    lost = [new_job(db, "ingest") for _ in range(5)]
    for job_id in lost:
        claim(db, job_id, "worker-dead")
        expire_lease(db, job_id, updated_at=utcnow() - timedelta(minutes=10))
    client.flushdb()  # only the re-sends are counted

    from app.services.jobs import housekeeping

    both_have_read = threading.Barrier(2, timeout=10)
    read_queued = housekeeping._queued_without_a_message

    def after_both_read(session, now):
        both_have_read.wait()
        return read_queued(session, now)

    def sweep() -> list[str]:
        with db.session_scope() as session:
            return jobs.recover_stuck_jobs(session)

    monkeypatch.setattr(housekeeping, "_queued_without_a_message", after_both_read)
    with ThreadPoolExecutor(2) as pool:
        first, second = pool.map(lambda _: sweep(), range(2))
    assert sorted(first + second) == sorted(lost)
    resent = [json.loads(raw)["headers"]["id"] for raw in client.lrange("ingest", 0, -1)]
    assert sorted(resent) == sorted(lost)


# --- cancel -------------------------------------------------------------------


def cancel(db, job_id: str, tenant_id: str = "default") -> Job:
    with db.session_scope() as session:
        return jobs.cancel_job(session, tenant_id, job_id)


def test_a_queued_job_cancelled_never_enters_its_handler(db):
    job_id = new_job(db)
    assert cancel(db, job_id).status == JobStatus.CANCELLED
    assert jobs.run(job_id, lambda ctx: pytest.fail("ran a cancelled job")) == "skipped"
    job = read(db, job_id)
    assert job.status == JobStatus.CANCELLED and job.started_at is None and job.finished_at


def test_a_running_job_stops_at_its_next_checkpoint_with_what_it_did(db):
    job_id = new_job(db)
    steps = []

    def handler(ctx):
        for step in range(1, 4):
            steps.append(step)
            if step == 2:
                assert cancel(db, job_id).status == JobStatus.RUNNING
                assert read(db, job_id).cancel_requested_at is not None
            ctx.checkpoint(step, total=3, partial_result={"steps": step})
        return {"steps": 3}

    assert jobs.run(job_id, handler) == "cancelled"
    job = read(db, job_id)
    assert steps == [1, 2]
    assert job.status == JobStatus.CANCELLED and job.result == {"steps": 2}
    assert job.progress_processed == 2 < job.progress_total == 3


def test_cancelling_a_finished_job_is_a_conflict_and_changes_nothing(db):
    job_id = new_job(db)
    assert jobs.run(job_id, lambda ctx: {"ok": True}) == "succeeded"
    with pytest.raises(Conflict):
        cancel(db, job_id)
    assert read(db, job_id).status == JobStatus.SUCCEEDED
    cancelled = new_job(db)
    cancel(db, cancelled)
    with pytest.raises(Conflict):  # cancelled is final too
        cancel(db, cancelled)


def test_another_tenants_job_cannot_be_cancelled(db):
    job_id = new_job(db)
    with pytest.raises(NotFound):
        cancel(db, job_id, tenant_id="someone-else")
    assert read(db, job_id).status == JobStatus.QUEUED


# --- transition() is the only way ----------------------------------------------


def test_a_status_set_outside_transition_is_refused(db):
    job_id = new_job(db)
    with db.session_scope() as session:
        with pytest.raises(jobs.StatusChangeOutsideTransition):
            session.execute(update(Job).where(Job.id == job_id).values(status="succeeded"))
        session.rollback()
        job = session.get(Job, job_id)
        job.status = "failed"
        with pytest.raises(jobs.StatusChangeOutsideTransition):
            session.commit()
        session.rollback()
    with db.session_scope() as session:
        session.add(Job(id="born-finished", tenant_id="default", type="search", status="succeeded"))
        with pytest.raises(jobs.StatusChangeOutsideTransition):
            session.commit()
    assert read(db, job_id).status == JobStatus.QUEUED


def test_transition_never_moves_a_finished_job(db):
    job_id = new_job(db)
    with db.session_scope() as session:
        assert jobs.transition(session, job_id, JobStatus.CANCELLED)
        session.commit()
        for status in (JobStatus.RUNNING, JobStatus.FAILED, JobStatus.CANCELLED):
            assert not jobs.transition(session, job_id, status)
        with pytest.raises(ValueError):
            jobs.transition(session, job_id, JobStatus.QUEUED)
        session.commit()
    assert read(db, job_id).status == JobStatus.CANCELLED


def test_every_change_a_poll_could_see_gives_the_job_a_new_version(db):
    """Conditional polls are answered from the version alone (a 304 never
    reads the job), so each change to the job's JSON must change it."""
    job_id = new_job(db)

    def version() -> str:
        with db.session_scope() as session:
            return jobs.job_version(session, PRINCIPAL.tenant_id, job_id).tag

    seen = [version()]

    def handler(ctx):
        seen.append(version())  # running
        ctx.checkpoint(1, total=3)
        seen.append(version())  # progress
        cancel(db, job_id)
        seen.append(version())  # cancel requested
        ctx.checkpoint(2)
        return {}

    assert jobs.run(job_id, handler) == "cancelled"
    seen.append(version())  # final
    assert len(set(seen)) == len(seen) == 5
    with db.session_scope() as session:
        assert jobs.version_of(jobs.get_job(session, PRINCIPAL.tenant_id, job_id)).tag == seen[-1]
        with pytest.raises(NotFound):
            jobs.job_version(session, "another-tenant", job_id)


def test_a_sweep_that_meets_an_unavailable_database_skips_its_tick_in_one_log_line(db, test_settings, tmp_path, caplog):
    """Beat and every worker sweep every few seconds: a database that is
    busy or down costs a warning per tick, not a task failure's traceback."""
    from app import runtime as process_runtime
    from workers import tasks

    process_runtime.configure(dataclasses.replace(test_settings, database_url=f"sqlite:///{tmp_path}/gone/q.db"))
    try:
        with caplog.at_level("WARNING", logger="workers.tasks"):
            assert tasks.recover_stuck_jobs() == 0
            assert tasks.sweep_due_deliveries() == 0
    finally:
        process_runtime.configure(test_settings)
    said = [record for record in caplog.records if record.name == "workers.tasks"]
    assert [record.levelname for record in said] == ["WARNING"] * 2
    assert all("database is busy or down" in record.getMessage() for record in said)
