"""The last line of defence: an unexpected exception is a 500 problem, with
no stack trace in the body."""

from __future__ import annotations

import pytest

from app import create_app
from app.extensions import db


@pytest.fixture
def app():
    # create_app binds the process-wide database; give it back afterwards.
    before = db.engine.url.render_as_string(hide_password=False) if db.engine else None
    yield create_app()
    if before:
        db.configure(before)


def test_an_unhandled_exception_is_a_500_problem_without_internals(app):
    @app.route("/explode")
    def explode():
        raise RuntimeError("database password is hunter2")

    response = app.test_client().get("/explode", headers={"X-Request-ID": "req-1"})
    assert response.status_code == 500
    assert response.headers["Content-Type"] == "application/problem+json"
    body = response.get_json()
    assert body["code"] == "internal_error" and body["status"] == 500
    assert body["request_id"] == "req-1" == response.headers["X-Request-ID"]
    assert "hunter2" not in response.get_data(as_text=True)
    assert "Traceback" not in response.get_data(as_text=True)
