"""What the HTTP server in front of the app (gunicorn) answers: a request
line too long to parse, a refused upload's body drained so the keep-alive
connection goes on working, and a key retrying past its rate limit held
back. The answers the app itself gives are checked in process (tests/api)."""

from __future__ import annotations

import threading
import time

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


def test_a_key_retrying_past_its_rate_limit_is_answered_about_once_a_second_and_no_one_else_waits(new_stack):
    stack = new_stack(RATE_LIMIT_FREE="3/hour")
    stack.start_web(processes=1)
    looping = stack.client(stack.create_key("loop", scopes="read", tier="free"))
    assert [looping.get("/api/v1/collections").status_code for _ in range(4)] == [200, 200, 200, 429]
    other = stack.client(stack.create_key("loop", scopes="read", tier="enterprise"))

    answers: dict[str, list[int]] = {"looping": [], "other": []}
    deadline = time.monotonic() + 3

    def tight_loop(name: str, client) -> None:
        while time.monotonic() < deadline:
            answers[name].append(client.get("/api/v1/collections").status_code)

    threads = [threading.Thread(target=tight_loop, args=item) for item in (("looping", looping), ("other", other))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    # Held back about a second each (not answered as fast as it asks), and
    # answered all the same, with a 429 that says when to come back.
    assert set(answers["looping"]) == {429} and len(answers["looping"]) <= 5, answers["looping"]
    # A key within its limit meanwhile is never held.
    assert set(answers["other"]) == {200} and len(answers["other"]) > 10 * len(answers["looping"])
