"""quarry_client's decisions that need no service: when a call is sent
again, and when a wait polls next."""

from __future__ import annotations

import json
import time

import httpx
import pytest

from quarry_client.calls import Call, RetryPolicy
from quarry_client.errors import RateLimited, Unavailable, WaitTimeout, error_from_response
from quarry_client.models import Job
from quarry_client.waiting import PollPlan, PollSchedule

SUBMIT = Call("POST", "/api/v1/collections/c/search", lambda r: r, repeatable=True)
CREATE = Call("POST", "/api/v1/collections", lambda r: r)


def answer(status: int, retry_after: str | None = None, body: dict | None = None) -> httpx.Response:
    """An error answer as the service gives it: problem+json."""
    headers = {"Content-Type": "application/problem+json", **({"Retry-After": retry_after} if retry_after else {})}
    return httpx.Response(status, headers=headers, content=json.dumps(body or {}).encode())


def test_refusals_are_retried_after_their_retry_after_and_gateway_errors_only_when_repeatable():
    policy = RetryPolicy(max_retries=2, max_retry_after=30)
    assert policy.after_answer(CREATE, 0, answer(429, "3")) == 3.0  # refused: nothing was done
    assert policy.after_answer(CREATE, 0, answer(503, "1")) == 1.0
    assert policy.after_answer(CREATE, 0, answer(502)) is None  # may have been done: not again
    assert policy.after_answer(SUBMIT, 0, answer(502)) is not None  # its Idempotency-Key makes it safe
    assert policy.after_error(CREATE, 0) is None and policy.after_error(SUBMIT, 0) is not None
    assert policy.after_answer(SUBMIT, 0, answer(429, "120")) is None  # too long: the caller's decision
    assert policy.after_answer(SUBMIT, 2, answer(429, "1")) is None  # out of retries
    assert policy.after_answer(SUBMIT, 0, answer(422)) is None


def test_a_problem_becomes_the_error_of_its_status_with_every_field():
    problem = {"code": "rate_limited", "detail": "Slow down.", "request_id": "r1", "errors": []}
    error = error_from_response(answer(429, "7", problem))
    assert isinstance(error, RateLimited) and error.retry_after == 7.0
    assert (error.status, error.code, error.detail, error.request_id) == (429, "rate_limited", "Slow down.", "r1")
    proxy = error_from_response(httpx.Response(503, text="<html>Service Unavailable</html>"))
    assert isinstance(proxy, Unavailable) and proxy.code == "http_503" and proxy.retry_after is None


def job(status: str, poll_after_ms: int | None = 200, job_id: str = "j") -> Job:
    return Job.from_json({"id": job_id, "type": "search", "status": status, "poll_after_ms": poll_after_ms})


def test_a_wait_polls_as_the_hint_says_within_bounds():
    schedule = PollSchedule(timeout=60)
    assert schedule.delay(job("queued", 1500)) == pytest.approx(1.5)
    assert schedule.delay(job("queued", 1500), retry_after=4) == pytest.approx(4)
    assert schedule.delay(job("queued", 0)) == schedule.min_interval  # never a tight loop
    assert schedule.delay(job("queued", 10_000_000)) == schedule.max_interval
    assert [schedule.delay(job("queued", None)) for _ in range(3)] == [0.5, 1.0, 2.0]  # no hint: backs off


def test_a_plan_polls_the_job_due_first_and_ends_at_its_bound():
    plan = PollPlan([job("queued", 5000, "slow"), job("queued", 100, "fast")], PollSchedule(timeout=0.3))
    index, delay = plan.next()
    assert plan.jobs[index].id == "fast" and delay <= 0.1
    plan.polled(index, job("succeeded", None, "fast"))
    index, delay = plan.next()
    assert plan.jobs[index].id == "slow" and delay <= 0.3  # not past the deadline
    time.sleep(0.3)
    with pytest.raises(WaitTimeout) as timeout:
        plan.next()
    assert timeout.value.job.id == "slow"


def test_a_503_is_sent_again_only_when_the_service_itself_refused_or_the_call_is_repeatable():
    policy = RetryPolicy()
    proxy_503 = httpx.Response(503, headers={"Retry-After": "1"}, text="upstream timed out")
    service_503 = httpx.Response(
        503, headers={"Retry-After": "1", "Content-Type": "application/problem+json"}, json={"code": "x"}
    )
    assert policy.after_answer(CREATE, 0, proxy_503) is None  # the key may have been made: not twice
    assert policy.after_answer(CREATE, 0, service_503) == 1.0
    assert policy.after_answer(SUBMIT, 0, proxy_503) == 1.0  # its Idempotency-Key makes it safe


def test_a_refusals_retry_after_is_followed_past_the_usual_poll_spacing_up_to_the_deadline():
    schedule = PollSchedule(timeout=600)
    assert schedule.delay(job("queued", 200), retry_after=120) == pytest.approx(120)
    short = PollSchedule(timeout=5)
    assert short.delay(job("queued", 200), retry_after=120) <= 5


def test_the_local_admin_key_goes_only_to_the_local_service(tmp_path, monkeypatch):
    from quarry_client.config import resolve

    (tmp_path / "var").mkdir()
    (tmp_path / "var" / "local-admin-key").write_text("qk_local\n")
    (tmp_path / "var" / "local-url").write_text("http://127.0.0.1:8123\n")
    monkeypatch.chdir(tmp_path)
    for name in ("QUARRY_URL", "QUARRY_API_KEY", "QUARRY_VAR_DIR"):
        monkeypatch.delenv(name, raising=False)
    assert resolve() == ("http://127.0.0.1:8123", "qk_local")
    assert resolve("http://127.0.0.1:8123/api/v1/") == ("http://127.0.0.1:8123", "qk_local")
    assert resolve("https://quarry.example.com") == ("https://quarry.example.com", None)
    monkeypatch.setenv("QUARRY_URL", "https://quarry.example.com")
    assert resolve() == ("https://quarry.example.com", None)
    monkeypatch.setenv("QUARRY_API_KEY", "qk_given")
    assert resolve() == ("https://quarry.example.com", "qk_given")
