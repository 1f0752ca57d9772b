"""Webhooks with a real receiver on 127.0.0.1, sent by the inline worker:
signed, retried, inspectable, redeliverable, disabled when they keep
failing. (Killed workers, a Redis outage and slow receivers:
tests/integration/test_webhooks.py.)"""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import update

from devstack.processes import wait_until
from devstack.receiver import Receiver
from quarry_client.webhooks import WebhookVerificationError, verify
from tests.integration.corpora import large_corpus, unique
from tests.webhook_calls import deliveries, settled, subscribe


@pytest.fixture
def receiver(api):
    started = Receiver(pump=api.worker.run_pending).start()
    yield started
    started.stop()


@pytest.fixture
def client(api):
    """A tenant of the test's own: endpoints receive every job of their tenant.
    Its endpoints go with the test, and their pending deliveries with them:
    retries to a stopped receiver would otherwise run inside later tests."""
    tenant = api.client(api.create_key(unique("hooks")))
    yield tenant
    for endpoint in tenant.get("/api/v1/webhooks").json()["items"]:
        assert tenant.delete(f"/api/v1/webhooks/{endpoint['id']}").status_code == 204


def test_a_callback_url_gets_the_final_event_signed_with_the_job_as_polled(client, receiver):
    secret = client.get("/api/v1/webhooks/secret").json()["secret"]
    assert client.ingest("notes", [{"text": "Owls hunt at night."}])["status"] == "succeeded"
    job = client.search("notes", query="night birds", callback_url=receiver.url())
    [request] = receiver.wait_for(1)
    event = verify(secret, request.headers, request.body)
    assert event["type"] == "job.succeeded" and event["id"] == request.headers["webhook-id"]
    assert event["data"]["job"] == client.get(f"/api/v1/jobs/{job['id']}").json()
    with pytest.raises(WebhookVerificationError):
        verify(secret, request.headers, request.body.replace(b"Owls", b"Cats"))


def test_an_endpoint_gets_an_ingest_jobs_progress_then_its_final_event_in_order(client, receiver):
    endpoint = subscribe(client, receiver.url(), ["job.progress", "job.succeeded"])
    job = client.ingest("big", large_corpus(120))
    assert job["status"] == "succeeded"

    def final_event_arrived() -> bool:
        receiver.pump()
        return "job.succeeded" in [e["type"] for e in receiver.events()]

    wait_until(final_event_arrived, 60, what="job.succeeded")
    events = [verify(endpoint["secret"], r.headers, r.body) for r in receiver.received]
    types = [e["type"] for e in events]
    assert types[-1] == "job.succeeded" and set(types[:-1]) == {"job.progress"} and len(types) >= 3
    assert [e["created_at"] for e in events] == sorted(e["created_at"] for e in events)
    progress = [e["data"]["job"]["progress"]["processed"] for e in events[:-1]]
    assert progress == sorted(progress) and events[-2]["data"]["job"]["progress"]["percent"] == 100.0
    assert len({e["id"] for e in events}) == len(events)


def test_a_failing_receiver_is_retried_with_one_webhook_id_and_can_be_redelivered(client, receiver):
    receiver.statuses = [500, 500]
    endpoint = subscribe(client, receiver.url(), ["ping"])
    assert client.post(f"/api/v1/webhooks/{endpoint['id']}/test").status_code == 202
    requests = receiver.wait_for(3)
    delivery = settled(client, endpoint["id"])
    assert len(receiver.received) == 3
    assert {r.headers["webhook-id"] for r in requests} == {delivery["event_id"]}
    assert delivery["attempts"] == 3 and delivery["event"] == "ping"
    assert [a["status_code"] for a in delivery["attempt_history"]] == [500, 500, 200]
    assert delivery["attempt_history"][0]["error"] == "HTTP 500"

    redelivered = client.post(f"/api/v1/webhooks/{endpoint['id']}/deliveries/{delivery['id']}/redeliver")
    assert redelivered.status_code == 202
    receiver.wait_for(4)
    assert receiver.received[3].headers["webhook-id"] == delivery["event_id"]
    assert verify(endpoint["secret"], receiver.received[3].headers, receiver.received[3].body)["type"] == "ping"


def test_a_receiver_that_is_down_gets_the_event_once_it_returns(client):
    down = Receiver(pump=client.worker.run_pending)  # its port is free: connections are refused
    endpoint = subscribe(client, down.url(), ["ping"])
    assert client.post(f"/api/v1/webhooks/{endpoint['id']}/test").status_code == 202
    wait_until(
        lambda: (deliveries(client, endpoint["id"]) or [{}])[0].get("attempts", 0) >= 2, 30, what="two refused attempts"
    )
    down.start()
    try:
        delivery = settled(client, endpoint["id"])
        assert len(down.received) == 1
        assert down.received[0].headers["webhook-id"] == delivery["event_id"]
        assert delivery["attempts"] >= 3
        assert all(a["status_code"] is None and a["error"] for a in delivery["attempt_history"][:-1])
    finally:
        down.stop()


def test_rotating_a_secret_signs_with_both_during_the_grace_period(client, receiver):
    endpoint = subscribe(client, receiver.url(), ["ping"])
    rotated = client.post(f"/api/v1/webhooks/{endpoint['id']}/rotate-secret")
    assert rotated.status_code == 200 and rotated.json()["secret"] != endpoint["secret"]
    assert client.post(f"/api/v1/webhooks/{endpoint['id']}/test").status_code == 202
    [request] = receiver.wait_for(1)
    assert len(request.headers["webhook-signature"].split(" ")) == 2
    for secret in (endpoint["secret"], rotated.json()["secret"]):
        assert verify(secret, request.headers, request.body)["type"] == "ping"
    assert "secret" not in client.get(f"/api/v1/webhooks/{endpoint['id']}").json()


def test_a_410_disables_the_endpoint_at_once(client, receiver):
    receiver.statuses = [410]
    endpoint = subscribe(client, receiver.url(), ["ping"])
    client.post(f"/api/v1/webhooks/{endpoint['id']}/test")
    settled(client, endpoint["id"], state="failed")
    read = client.get(f"/api/v1/webhooks/{endpoint['id']}").json()
    assert read["active"] is False and "410" in read["disabled_reason"]
    assert client.post(f"/api/v1/webhooks/{endpoint['id']}/test").status_code == 409
    assert len(receiver.received) == 1


def test_an_endpoint_failing_past_the_threshold_is_disabled_and_gets_nothing_more(client, receiver, runtime):
    from app.models import WebhookEndpoint, utcnow

    receiver.statuses = [500] * 10
    endpoint = subscribe(client, receiver.url(), ["job.succeeded", "ping"])
    with runtime.session_scope() as session:  # it has been failing for 73 hours
        session.execute(
            update(WebhookEndpoint)
            .where(WebhookEndpoint.id == endpoint["id"])
            .values(failing_since=utcnow() - timedelta(hours=73))
        )
        session.commit()
    client.post(f"/api/v1/webhooks/{endpoint['id']}/test")
    wait_until(
        lambda: not client.get(f"/api/v1/webhooks/{endpoint['id']}").json()["active"], 30, what="the endpoint disabled"
    )
    read = client.get(f"/api/v1/webhooks/{endpoint['id']}").json()
    assert "72 hours" in read["disabled_reason"]
    seen = len(receiver.received)
    assert client.ingest("after", [{"text": "Nothing is sent for this."}])["status"] == "succeeded"
    settled(client, endpoint["id"], state="failed")
    assert len(receiver.received) == seen == 1


def test_unknown_event_types_are_422(client, receiver):
    response = client.post("/api/v1/webhooks", json={"url": receiver.url(), "events": ["job.exploded"]})
    assert response.status_code == 422 and response.json()["errors"][0]["field"] == "events.0"


REFUSED_URLS = [
    "http://127.0.0.1/hook",
    "http://2130706433/",  # 127.0.0.1 as one decimal number
    "http://0177.0.0.1/",  # octal
    "http://0x7f.0.0.1/",  # hex
    "http://127.1/",  # short form
    "http://[::1]/hook",
    "http://[::ffff:127.0.0.1]/",  # IPv4-mapped
    "http://[::127.0.0.1]/",  # IPv4-compatible
    "http://[64:ff9b::7f00:1]/",  # NAT64
    "http://[64:ff9b:1::a00:1]/",  # NAT64 for local use
    "http://[2002:7f00:1::]/",  # 6to4
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
    "http://169.254.169.254/latest",
    "http://[64:ff9b::a9fe:a9fe]/latest",  # NAT64 of the metadata address
    "http://10.0.0.1/",
    "http://localhost:9/",
    "http://[fe80::1]/",
    "file:///etc/passwd",
]

MALFORMED_URLS = [
    "http://[::1/",
    "http://[::1]x/",
    "http://[not-an-address]/",
    "http://host:99999/",
    "http://host:port/",
    "http://exa mple.com/",
    "http://",
    "not a url",
]


@pytest.mark.parametrize("url", REFUSED_URLS + MALFORMED_URLS)
def test_private_malformed_and_non_http_urls_are_422_wherever_a_url_is_given(app_with, url):
    app = app_with(webhook_allow_private_networks=False)  # the default
    # A tenant of its own, which runs no job: nothing is ever sent to its
    # endpoint's public address, and the endpoint goes with the test.
    client = app.client(app.create_key(unique("ssrf")))
    collection = unique("c")
    assert client.post("/api/v1/collections", json={"name": collection}).status_code == 201
    endpoint = client.post("/api/v1/webhooks", json={"url": "https://1.1.1.1/hook", "events": ["*"]}).json()
    try:
        refused_wherever_given(client, collection, endpoint, url)
    finally:
        assert client.delete(f"/api/v1/webhooks/{endpoint['id']}").status_code == 204


def refused_wherever_given(client, collection: str, endpoint: dict, url: str) -> None:
    for response, field in [
        (client.post("/api/v1/webhooks", json={"url": url, "events": ["*"]}), "url"),
        (client.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"url": url}), "url"),
        (
            client.post(f"/api/v1/collections/{collection}/search", json={"query": "q", "callback_url": url}),
            "callback_url",
        ),
    ]:
        assert response.status_code == 422, (url, response.text)
        assert response.headers["Content-Type"] == "application/problem+json"
        assert [e["field"] for e in response.json()["errors"]] == [field]
    assert client.get("/api/v1/jobs", params={"collection": collection}).json()["items"] == []
    assert client.get(f"/api/v1/webhooks/{endpoint['id']}").json()["url"] == "https://1.1.1.1/hook"


def test_a_read_only_key_cannot_read_the_signing_secret(client):
    reader = client.client(client.post("/api/v1/keys", json={"name": "r", "scopes": ["read"]}).json()["key"])
    assert reader.get("/api/v1/webhooks").status_code == 200
    refused = reader.get("/api/v1/webhooks/secret")
    assert refused.status_code == 403 and "write" in refused.json()["detail"]


def test_retries_follow_a_changed_url(client, receiver):
    gone = Receiver(statuses=[500] * 10, pump=client.worker.run_pending).start()
    try:
        endpoint = subscribe(client, gone.url(), ["ping"])
        client.post(f"/api/v1/webhooks/{endpoint['id']}/test")
        gone.wait_for(1)
        moved = client.patch(f"/api/v1/webhooks/{endpoint['id']}", json={"url": receiver.url()})
        assert moved.status_code == 200 and moved.json()["url"] == receiver.url()
        [request] = receiver.wait_for(1)
        delivery = settled(client, endpoint["id"])
        assert request.headers["webhook-id"] == delivery["event_id"] == gone.received[0].headers["webhook-id"]
    finally:
        gone.stop()
