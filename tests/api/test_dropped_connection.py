"""PostgreSQL may end a connection under a request that has already made
its answer (a restart: `pg_ctl stop -m fast` terminates every backend).
Closing that request's session then cannot roll back; the answer must go
out all the same, and the next request must get a working session."""

from __future__ import annotations

import pytest
from sqlalchemy import text

from app.extensions import db


def test_a_connection_dropped_after_the_answer_was_made_still_gets_that_answer(app_with, settings):
    if not settings.database_url.startswith("postgresql"):
        pytest.skip("only PostgreSQL ends a client's connection under it (TEST_DATABASE_URL)")
    client = app_with()

    @client.app.after_request
    def the_database_drops_this_requests_connection(response):
        # A transaction is open on the request's connection, as at the end of
        # any request that read: closing the session must roll it back.
        backend = db.session.execute(text("SELECT pg_backend_pid()")).scalar_one()
        with db.engine.connect() as other:
            other.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": backend})
        return response

    answered = client.get("/api/v1/collections")
    assert answered.status_code == 200 and "items" in answered.json()
    assert client.get("/api/v1/collections").status_code == 200
