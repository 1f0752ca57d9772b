"""Webhooks across the service's processes, with a real receiver on
127.0.0.1: a worker killed mid-delivery, a Redis outage, a slow receiver
(the webhook contract itself: tests/api/test_webhooks.py)."""

from __future__ import annotations

from datetime import datetime

import pytest

from devstack.processes import wait_until
from devstack.receiver import Receiver
from tests.conftest import WEBHOOK_TEST_SETTINGS
from tests.integration.brokers import redis_broker_only
from tests.integration.corpora import large_corpus, unique
from tests.webhook_calls import settled, subscribe

pytestmark = pytest.mark.integration


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


@pytest.fixture
def client(service):
    """A tenant of the test's own: endpoints receive every job of their tenant."""
    return service.client(service.create_key(unique("hooks")))


@pytest.fixture(scope="module")
def stack(module_stack):
    """Web, worker and beat for the tests that break things and leave them
    working (a worker replaced, Redis started again); each test is a tenant
    of its own. The attempt's lease is the timeout and 5 s."""
    stack = module_stack(**WEBHOOK_TEST_SETTINGS, WEBHOOK_TIMEOUT_SECONDS="3")
    stack.start_web(wait=False)
    stack.start_beat(wait=False)
    stack.start_worker()
    stack.wait_started()
    stack.wait_start_up_sweeps()  # before a test stops Redis under them
    return stack


def test_a_worker_killed_mid_delivery_loses_no_event(stack):
    client = stack.client(stack.create_key(unique("killed")))
    [worker] = [process for process in stack.workers.values() if process.poll() is None]
    slow = Receiver(delay=8).start()  # holds the first attempt open
    try:
        endpoint = subscribe(client, slow.url(), ["ping"])
        assert client.post(f"/api/v1/webhooks/{endpoint['id']}/test").status_code == 202
        slow.wait_for(1)
        stack.kill(worker)  # in the middle of the attempt
        slow.delay = 0
        stack.start_worker()  # the attempt's lease runs out; beat's sweep sends it again
        delivery = settled(client, endpoint["id"])
        ids = {r.headers["webhook-id"] for r in slow.received}
        assert ids == {delivery["event_id"]} and len(slow.received) >= 2
    finally:
        slow.stop()


@redis_broker_only
def test_a_job_finishing_while_redis_is_down_has_its_event_delivered_after(stack, receiver):
    client = stack.client(stack.create_key(unique("outage")))
    subscribe(client, receiver.url(), ["job.succeeded"])
    submitted = client.post("/api/v1/collections/outage/documents", json={"documents": large_corpus(150)}).json()
    wait_until(
        lambda: client.get(f"/api/v1/jobs/{submitted['id']}").json()["progress"]["processed"] > 0,
        120,
        interval=0.05,
        what="ingest progress",
    )
    stack.redis.stop()  # the broker loses everything: it keeps nothing on disk
    job = client.wait_job(submitted["id"], timeout=180)  # polls read SQL
    assert job["status"] == "succeeded" and receiver.received == []
    stack.redis.start()
    [request] = receiver.wait_for(1, timeout=90)
    assert request.event["type"] == "job.succeeded" and request.event["data"]["job"]["id"] == job["id"]


def test_a_slow_receiver_holds_up_no_job(client):
    assert client.ingest("quick", [{"text": "Swifts sleep on the wing."}])["status"] == "succeeded"
    slow = Receiver(delay=8).start()
    try:
        endpoint = subscribe(client, slow.url(), ["ping"])
        for _ in range(4):
            assert client.post(f"/api/v1/webhooks/{endpoint['id']}/test").status_code == 202
        slow.wait_for(2)  # two attempts held open, as many as the worker has pool processes
        job = client.search("quick", query="birds that sleep flying")
        assert job["status"] == "succeeded"
        finished = datetime.fromisoformat(job["finished_at"]).timestamp()
        assert finished < slow.received[0].at + slow.delay, "the search waited for the slow receiver"
    finally:
        slow.stop()
