"""quarry_client against the app in this process (httpx's WSGI transport),
jobs run by the inline worker: how its calls read the service's answers.
Against the real processes: tests/integration/test_client.py."""

from __future__ import annotations

import asyncio
import dataclasses
import time

import httpx
import pytest

from app.extensions import db
from app.models import Collection
from quarry_client import (
    AsyncQuarry,
    Conflict,
    JobCancelled,
    JobFailed,
    NotFound,
    Quarry,
    QuarryError,
    RateLimited,
    RetryPolicy,
    ValidationError,
    WaitTimeout,
)
from tests.api.inprocess import BASE_URL
from tests.integration.corpora import unique


class InProcess(httpx.WSGITransport):
    """The app in this process. Each GET first runs what the inline worker
    has due, as the tier's own client does; every answer is recorded."""

    def __init__(self, client) -> None:
        super().__init__(app=client.app)
        self.worker = client.worker
        self.answers: list[tuple[str, str, int]] = []

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.method == "GET":
            self.worker.run_pending()
        response = super().handle_request(request)
        self.answers.append((request.method, request.url.path, response.status_code))
        return response


class DropsFirstSubmit(InProcess):
    """Once armed, the next POST reaches the app, then its answer is lost, as
    when a connection drops after the request was sent."""

    armed = False

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = super().handle_request(request)
        if request.method == "POST" and self.armed:
            self.armed = False
            raise httpx.RemoteProtocolError("Server disconnected without sending a response.", request=request)
        return response


def connect(client, transport_class=InProcess, **options) -> tuple[Quarry, InProcess]:
    transport = transport_class(client)
    key = client.headers["Authorization"].removeprefix("Bearer ")
    return Quarry(BASE_URL, key, transport=transport, wait_timeout=60, **options), transport


@pytest.fixture
def tenant(api):
    """A client of the tier's app for a tenant of the test's own."""
    return api.client(api.create_key(unique("client")))


def test_problems_are_raised_as_typed_errors_with_detail_request_id_and_fields(tenant):
    quarry, _ = connect(tenant)
    with pytest.raises(NotFound) as missing:
        quarry.collections.get("nothing-here")
    assert missing.value.status == 404 and missing.value.code == "not_found"
    assert missing.value.request_id and missing.value.request_id in str(missing.value)

    with pytest.raises(ValidationError) as invalid:
        quarry.collections.create("Not A Name!")
    assert invalid.value.code == "validation_error"
    assert [e.field for e in invalid.value.errors] == ["name"]

    quarry.collections.create("notes")
    with pytest.raises(Conflict):
        quarry.collections.create("notes")
    with pytest.raises(QuarryError) as unauthorized:
        Quarry(BASE_URL, "qk_not_a_key", transport=InProcess(tenant)).collections.list().__next__()
    assert unauthorized.value.status == 401 and unauthorized.value.code == "unauthorized"


def test_a_list_iterates_over_every_page(tenant):
    quarry, transport = connect(tenant)
    names = {f"c{n:02d}" for n in range(23)}
    for name in names:
        quarry.collections.create(name)
    assert {c.name for c in quarry.collections.list()} == names
    pages = [path for method, path, _ in transport.answers if method == "GET"]
    assert pages == ["/api/v1/collections"] * 2  # 20 a page: two pages


def test_wait_on_a_job_that_never_finishes_raises_wait_timeout_at_its_bound(tenant):
    quarry, transport = connect(tenant)
    quarry.collections.create("notes")
    with tenant.worker.paused():  # no worker: the job stays queued
        job = quarry.search("notes", "anything")
        started = time.monotonic()
        with pytest.raises(WaitTimeout) as timeout:
            job.wait(timeout=1.0)
    assert time.monotonic() - started >= 1.0
    assert timeout.value.job.id == job.id and timeout.value.job.status == "queued"
    polls = [path for method, path, _ in transport.answers if path == f"/api/v1/jobs/{job.id}"]
    assert 1 <= len(polls) <= 10  # as poll_after_ms says, not a tight loop


def test_a_cancelled_job_raises_job_cancelled(tenant):
    quarry, _ = connect(tenant)
    quarry.collections.create("notes")
    with tenant.worker.paused():
        job = quarry.search("notes", "anything")
        assert quarry.jobs.cancel(job.id).status == "cancelled"
    with pytest.raises(JobCancelled) as cancelled:
        job.wait()
    assert cancelled.value.job.status == "cancelled"


def test_a_failed_job_raises_job_failed_with_its_error_code(tenant):
    quarry, _ = connect(tenant)
    name = unique("notes")
    quarry.collections.create(name)
    with tenant.worker.paused():
        job = quarry.documents.add(name, [{"text": "Owls hunt at night."}])
        with db.session_scope() as session:  # the collection goes before the ingest runs
            session.delete(session.query(Collection).filter_by(name=name).one())
            session.commit()
    with pytest.raises(JobFailed) as failed:
        job.wait()
    assert failed.value.job.status == "failed"
    assert failed.value.code == failed.value.job.error["code"] == "not_found"


def test_a_429_is_retried_after_its_retry_after(app_with, settings):
    limited = app_with(rate_limits={**settings.rate_limits, "enterprise": "2/second"})
    quarry, transport = connect(limited)
    started = time.monotonic()
    for _ in range(3):
        assert quarry.pipelines.list()
    statuses = [status for _, _, status in transport.answers]
    assert 429 in statuses and statuses[-1] == 200
    refused_at = statuses.index(429)
    assert time.monotonic() - started >= 0.5  # it slept before the retry, as Retry-After said

    # A client that may not retry raises the refusal, with the wait it was told.
    strict, _ = connect(limited, retry=RetryPolicy(max_retries=0))
    with pytest.raises(RateLimited) as refused:
        for _ in range(3):
            strict.pipelines.list()
    assert refused.value.retry_after is not None and refused.value.retry_after >= 0
    assert refused_at >= 2


def test_a_submit_retried_after_a_dropped_connection_creates_one_job(tenant):
    quarry, transport = connect(tenant, DropsFirstSubmit)
    quarry.collections.create("notes")
    transport.armed = True  # the search's first answer is lost
    job = quarry.search("notes", "owls at night")
    assert job.replayed  # the retry found the job the first attempt made
    assert [j.id for j in quarry.jobs.list(type="search")] == [job.id]
    assert job.wait().result.hits == []


def test_wait_all_waits_for_many_jobs_in_one_loop(tenant):
    quarry, transport = connect(tenant)
    ingest = quarry.documents.add("notes", [{"id": "owl", "text": "Owls hunt mice at night."}])
    ingest.wait()
    with tenant.worker.paused():
        submitted = [quarry.search("notes", query) for query in ("owls", "night hunting", "mice")]
        start = len(transport.answers)
        updates: list[list[str]] = []
        # Long enough for each job's first poll, when its hint says.
        bound = max(job.poll_after_ms or 0 for job in submitted) / 1000 + 0.5
        with pytest.raises(WaitTimeout):  # one loop: every job is polled before any is final
            quarry.jobs.wait_all(submitted, timeout=bound, on_update=lambda jobs: updates.append([j.id for j in jobs]))
        assert updates and all(ids == [j.id for j in submitted] for ids in updates)
        polls = [(path.rsplit("/", 1)[1], status) for _, path, status in transport.answers[start:]]
        assert {job_id for job_id, _ in polls} == {j.id for j in submitted}
        assert 304 in [status for _, status in polls]  # unchanged jobs answer the wait's If-None-Match
    finished = quarry.jobs.wait_all(submitted)
    assert [j.id for j in finished] == [j.id for j in submitted]
    assert all(j.status == "succeeded" and j.result.hits[0].document_id == "owl" for j in finished)
    assert next(iter(quarry.jobs.list(type="search"))).wait().status == "succeeded"  # listed jobs wait too


def test_results_are_typed_by_job_type(tenant):
    quarry, _ = connect(tenant)
    # Latin-1, not UTF-8: it passes the upload's checks and fails alone in the worker.
    ingest = quarry.documents.upload("notes", [("a.txt", b"Bees make honey."), ("bad.txt", b"Caf\xe9 cr\xe8me")])
    result = ingest.wait().result
    assert (result.documents, [f.source for f in result.failed]) == (1, ["bad.txt"])
    batch = quarry.search.batch("notes", ["honey", "bees"], top_k=1).wait().result
    assert [(r.query, r.hits[0].document_id) for r in batch.results] == [("honey", "a.txt"), ("bees", "a.txt")]
    assert dataclasses.asdict(batch.results[0].hits[0])["document_id"] == "a.txt"


class AsyncInProcess(httpx.AsyncBaseTransport):
    """AsyncQuarry's way to the same in-process app: each request is handed to
    a synchronous transport in a thread."""

    def __init__(self, transport: InProcess) -> None:
        self.transport = transport

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = await request.aread()
        copy = httpx.Request(request.method, request.url, headers=request.headers, content=body)
        response = await asyncio.to_thread(self.transport.handle_request, copy)
        return httpx.Response(response.status_code, headers=response.headers, content=response.read())


def test_async_quarry_retries_a_dropped_submit_once_and_raises_job_cancelled(tenant):
    transport = DropsFirstSubmit(tenant)
    key = tenant.headers["Authorization"].removeprefix("Bearer ")

    async def scenario() -> None:
        async with AsyncQuarry(BASE_URL, key, transport=AsyncInProcess(transport), wait_timeout=60) as quarry:
            await quarry.collections.create("notes")
            with tenant.worker.paused():
                transport.armed = True  # the search's first answer is lost
                job = await quarry.search("notes", "owls")
                assert job.replayed and [j.id async for j in quarry.jobs.list()] == [job.id]
                await quarry.jobs.cancel(job.id)
            with pytest.raises(JobCancelled):
                await job.wait()
            with pytest.raises(NotFound):
                await quarry.jobs.get("no-such-job")

    asyncio.run(scenario())
