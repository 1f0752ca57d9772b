"""What the HTTP server in front of the app (gunicorn) answers: a request
line too long to parse, and a refused upload's body drained so the
keep-alive connection goes on working. The answers the app itself gives are
checked in process (tests/api)."""

from __future__ import annotations

import pytest

from tests.integration.problems import assert_problem

pytestmark = pytest.mark.integration


def test_a_very_long_request_line_is_refused_without_a_500(service):
    response = service.get("/api/v1/jobs/" + "x" * 10000)
    assert response.status_code == 414


def test_a_refused_upload_is_drained_and_the_connection_still_works(service, collection):
    too_big = b"word " * (1024 * 1024 // 5 + 1000)  # a little over MAX_UPLOAD_MB=1
    response = service.post(
        f"/api/v1/collections/{collection}/documents",
        files=[("files", ("big.txt", too_big, "text/plain"))],
    )
    assert_problem(response, 413, "payload_too_large")
    # The same keep-alive connection (one requests.Session) answers the next request.
    assert service.get("/health/live").status_code == 200


def test_a_chunked_json_body_over_the_limit_is_413(service, collection):
    """gunicorn ends a chunked body itself (no Content-Length): the limit is
    enforced while it is read, and the answer says so, not "malformed JSON"."""
    head = b'{"documents": [{"text": "'
    body = [head, b"word " * (1024 * 1024 // 5 + 1000), b'"}]}']
    response = service.post(
        f"/api/v1/collections/{collection}/documents",
        data=iter(body),  # an iterator: requests sends it chunked
        headers={"Content-Type": "application/json"},
    )
    assert "Content-Length" not in response.request.headers
    assert_problem(response, 413, "payload_too_large")
