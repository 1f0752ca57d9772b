"""The last line of defence: an unexpected exception is a 500 problem, with
no stack trace in the body. And a status reads one way, whoever raised it."""

from __future__ import annotations

import marshmallow as ma
import pytest
from werkzeug.exceptions import default_exceptions

from app.api.problems import handle_http_exception, handle_service_error, handle_validation_error
from app.services import errors as service_errors


@pytest.fixture
def app(make_app):
    return make_app()


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


SERVICE_ERRORS = [
    cls
    for cls in vars(service_errors).values()
    if isinstance(cls, type) and issubclass(cls, service_errors.ServiceError)
]


@pytest.mark.parametrize("error_class", SERVICE_ERRORS, ids=lambda cls: cls.__name__)
def test_a_status_has_one_title_whether_a_service_or_the_framework_refuses(app, error_class):
    with app.test_request_context("/api/v1/collections"):
        from_service = handle_service_error(error_class("Refused.")).get_json()
        from_framework = handle_http_exception(default_exceptions[error_class.status]()).get_json()
    assert from_service["status"] == from_framework["status"] == error_class.status
    assert from_service["title"] == from_framework["title"]


def test_every_validation_failure_reads_unprocessable_content(app):
    with app.test_request_context("/api/v1/collections"):
        titles = {
            handle_service_error(service_errors.ValidationFailed("Bad header.")).get_json()["title"],
            handle_validation_error(ma.ValidationError({"metadata": ["Not an object."]})).get_json()["title"],
            handle_http_exception(default_exceptions[422]()).get_json()["title"],
        }
    assert titles == {"Unprocessable Content"}
