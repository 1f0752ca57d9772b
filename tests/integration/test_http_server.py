"""What the HTTP server in front of the app (gunicorn) answers: a request
line too long to parse, a refused upload's body drained so the keep-alive
connection goes on working, and requests that come too early held back (a
key retrying past its rate limit, conditional polls sooner than the job's
hint). The answers the app itself gives are checked in process (tests/api)."""

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

    side_by_side(tight_loop, ("looping", looping), ("other", other))
    # Held back about a second each (not answered as fast as it asks), and
    # answered all the same, with a 429 that says when to come back.
    assert set(answers["looping"]) == {429} and len(answers["looping"]) <= 5, answers["looping"]
    # A key within its limit meanwhile is never held.
    assert set(answers["other"]) == {200} and len(answers["other"]) > 10 * len(answers["looping"])


def test_conditional_polls_sooner_than_the_jobs_hint_wait_for_it_and_plain_polls_do_not(new_stack):
    stack = new_stack()
    stack.start_web(processes=1)
    assert stack.post("/api/v1/collections", json={"name": "early"}).status_code == 201
    job = stack.post("/api/v1/collections/early/search", json={"query": "anything"}).json()
    assert stack.post(f"/api/v1/jobs/{job['id']}/cancel").json()["status"] == "cancelled"  # final: never changes
    path = f"/api/v1/jobs/{job['id']}"
    etag = stack.get(path).headers["ETag"]

    answers: dict[str, list[int]] = {"conditional": [], "plain": []}
    deadline = time.monotonic() + 3

    def tight_loop(name: str, headers: dict) -> None:
        client = stack.client(stack.create_key("private", scopes="read", name=name))  # the stack's own tenant
        while time.monotonic() < deadline:
            answers[name].append(client.get(path, headers=headers).status_code)

    side_by_side(tight_loop, ("conditional", {"If-None-Match": etag}), ("plain", {}))
    # A finished job is worth polling again after a second at the soonest
    # (the first of the loop is answered at once).
    assert set(answers["conditional"]) == {304} and len(answers["conditional"]) <= 5, answers["conditional"]
    assert set(answers["plain"]) == {200} and len(answers["plain"]) > 10 * len(answers["conditional"])


def side_by_side(target, *arguments: tuple) -> None:
    """`target(*each)` in a thread of its own, all at once; back when all are."""
    threads = [threading.Thread(target=target, args=each) for each in arguments]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
