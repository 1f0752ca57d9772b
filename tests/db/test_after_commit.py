"""after_commit(): work that must follow a commit runs when, and only when,
the session that queued it commits."""

from __future__ import annotations

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session

from app.extensions import after_commit


def test_queued_work_runs_in_order_once_the_transaction_commits(runtime):
    ran: list[str] = []
    with runtime.session_scope() as session:
        session.execute(text("SELECT 1"))
        after_commit(session, lambda: ran.append("message"))
        after_commit(session, lambda: ran.append("counter"))
        session.flush()
        assert ran == []  # a flush is not a commit
        session.commit()
        assert ran == ["message", "counter"]
        session.commit()  # the next transaction has nothing queued
    assert ran == ["message", "counter"]


def test_a_rollback_drops_the_queued_work(runtime):
    ran: list[str] = []
    with runtime.session_scope() as session:
        after_commit(session, lambda: ran.append("rolled back"))
        session.rollback()
        session.commit()
    with runtime.session_scope() as session:
        after_commit(session, lambda: ran.append("closed without a commit"))
    assert ran == []


def test_the_request_session_proxy_queues_on_its_session(runtime):
    ran: list[str] = []
    after_commit(runtime.session, lambda: ran.append("request"))
    runtime.session.commit()
    assert ran == ["request"]
    runtime.remove_session()


def test_a_session_that_would_never_run_the_work_is_refused(runtime):
    with Session(runtime.engine) as session, pytest.raises(TypeError):
        after_commit(session, lambda: None)
