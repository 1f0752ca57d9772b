"""Following: a job that would repeat the work of an identical job running
elsewhere waits on that job instead, without holding a worker.

The follower is recorded in SQL (`jobs.follows_job_id`) in a transaction
that locks the leader's row and checks that it is still running, so a
leader finishing at the same moment is never missed: either the follower is
recorded first, and the leader's final transition() finishes it in the same
transaction (transitions.py), or the leader has already finished and the
follower is not recorded (its caller takes the leader's stored answer, or
does the work itself).

Followers stay running under a lease of their own. If the leader's worker
dies, both leases run out and the recovery sweep re-sends leader and
followers alike: a re-run leader finishes the followers still waiting on
it, and a re-run follower no longer follows anyone (runner.claim).
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

from sqlalchemy import Row, select, update

from app.extensions import db
from app.models import Job, utcnow
from app.services.jobs.kinds import JobStatus
from app.services.jobs.runner import JobContext


def follow(leader_id: str, followers: Sequence[JobContext]) -> bool:
    """Record `followers` (jobs this worker holds) as following `leader_id`
    if that job is running under a live lease, and renew their leases.
    Whether they now follow it."""
    now = utcnow()
    with db.session_scope() as session:
        # On PostgreSQL the lock waits for a final transition of the leader
        # that is in flight; SQLite's BEGIN IMMEDIATE serialises writers anyway.
        leader = session.execute(
            select(Job.status, Job.lease_expires_at, Job.follows_job_id).where(Job.id == leader_id).with_for_update()
        ).first()
        if leader is None or not _leads(leader, now):
            return False
        for ctx in followers:
            session.execute(
                update(Job)
                .where(Job.id == ctx.job_id, Job.status == JobStatus.RUNNING, Job.lease_owner == ctx.owner)
                .values(
                    follows_job_id=leader_id,
                    lease_expires_at=now + timedelta(seconds=ctx.lease_seconds),
                    updated_at=now,
                )
            )
        session.commit()
    return True


def _leads(leader: Row, now: datetime) -> bool:
    """Running, under a live lease (a dead worker's job would keep its
    followers waiting until recovery), and not itself a follower."""
    lease_lives = leader.lease_expires_at is not None and leader.lease_expires_at >= now
    return leader.status == JobStatus.RUNNING and lease_lives and leader.follows_job_id is None
