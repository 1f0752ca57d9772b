"""RabbitMQ as the broker (CELERY_BROKER_URL=amqp://…), Redis kept as the
cache and rate-limit store: priorities, jobs, webhooks and a killed worker's
job, on the machine's RabbitMQ in a virtual host of the test's own. Skipped
where no RabbitMQ answers on 127.0.0.1:5672."""

from __future__ import annotations

import os
import time

import pytest
from kombu import Connection, Exchange, Queue

from app.services.jobs.broker import AMQP_MAX_PRIORITY, BULK_PRIORITY, NORMAL_PRIORITY, RECOVERY_PRIORITY, wire_priority
from devstack import rabbitmq
from devstack.receiver import Receiver
from devstack.waiting import wait_until
from tests.integration.corpora import large_corpus

pytestmark = pytest.mark.integration
SERVER = os.environ.get("TEST_BROKER_URL", "amqp://guest:guest@127.0.0.1:5672")


@pytest.fixture
def amqp_url():
    """A virtual host of this test's own on the machine's RabbitMQ."""
    if not rabbitmq.answers(SERVER):
        pytest.skip("no RabbitMQ (with rabbitmqctl) on 127.0.0.1:5672")
    vhost = rabbitmq.VirtualHost(SERVER)
    yield vhost.url
    vhost.delete()


def test_rabbitmq_hands_out_recovery_first_and_bulk_last(amqp_url):
    """The queue as the service declares it, and priorities as it sends them."""
    queue = Queue("search", Exchange("search"), "search", queue_arguments={"x-max-priority": AMQP_MAX_PRIORITY})
    with Connection(amqp_url) as connection:
        producer = connection.Producer()
        for name, priority in [("bulk", BULK_PRIORITY), ("normal", NORMAL_PRIORITY), ("recovery", RECOVERY_PRIORITY)]:
            producer.publish(
                {"job": name},
                exchange=queue.exchange,
                routing_key="search",
                declare=[queue],
                priority=wire_priority(priority, amqp_url),
            )
        time.sleep(0.2)  # published asynchronously; let RabbitMQ order them
        taken = []
        while (message := queue(connection.default_channel).get(no_ack=True)) is not None:
            taken.append(message.payload["job"])
    assert taken == ["recovery", "normal", "bulk"]


def test_on_rabbitmq_jobs_webhooks_and_a_killed_workers_ingest_complete(new_stack, amqp_url):
    stack = new_stack(
        CELERY_BROKER_URL=amqp_url,
        JOB_LEASE_SECONDS="4",
        RECOVERY_INTERVAL_SECONDS="2",
        WEBHOOK_ALLOW_PRIVATE_NETWORKS="1",
    )
    stack.start_web()
    first, second = stack.start_workers(2)
    receiver = Receiver().start()
    try:
        documents = large_corpus(100)
        # As a careful client submits: a refusal for now (a broker slow to
        # answer a loaded host's first connection) is tried again.
        submitted = stack.submit(
            "/api/v1/collections/rabbit/documents",
            {"documents": documents, "callback_url": receiver.url(), "callback_events": ["job.succeeded"]},
            retries=2,
        )

        def mid_way():
            job = stack.get(f"/api/v1/jobs/{submitted['id']}").json()
            return job if 0 < job["progress"]["processed"] < 100 else None

        wait_until(mid_way, 120, interval=0.05, what="ingest progress")
        logs = {first: stack.workdir / "worker1.log", second: stack.workdir / "worker2.log"}
        [running_it] = [p for p, log in logs.items() if submitted["id"] in log.read_text()]
        killed_at = time.monotonic()
        stack.kill(running_it)

        job = stack.wait_job(submitted["id"], timeout=180)
        recovered_in = time.monotonic() - killed_at
        assert job["status"] == "succeeded" and job["attempts"] == 2, job
        assert (job["result"]["documents"], job["result"]["chunks"]) == (100, 100)
        print(f"RabbitMQ: a killed worker's ingest finished {recovered_in:.1f} s after the kill")

        hits = stack.search("rabbit", query=documents[42]["text"], top_k=5)["result"]["hits"]
        assert hits[0]["document_id"] == "doc-42"
        receiver.wait_for(1, timeout=30)
        time.sleep(1)  # a duplicate would arrive about now
        assert [event["type"] for event in receiver.events()] == ["job.succeeded"]
    finally:
        receiver.stop()
