"""Delivery in process: the SSRF guard at delivery time, where the address
actually connected to is checked (here with private networks not allowed),
and a delivery deleted while its attempt was on the wire."""

from __future__ import annotations

import pytest

from app.extensions import settings
from app.models import WebhookDelivery, WebhookEndpoint
from app.services.webhooks import delivery, endpoints
from app.services.webhooks.events import record_ping
from devstack.receiver import Receiver


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def test_a_host_that_resolves_to_loopback_is_refused_at_delivery(runtime, receiver):
    assert settings.webhook_allow_private_networks is False
    with runtime.session_scope() as session:
        # Registered while it resolved elsewhere (DNS rebinding), say.
        endpoint = WebhookEndpoint(
            tenant_id="default",
            url=f"http://localhost:{receiver.port}/hook",
            events=["ping"],
            active=True,
            secret=endpoints.new_secret(),
        )
        session.add(endpoint)
        session.flush()
        delivery_id = record_ping(session, endpoint).id
        session.commit()

    assert delivery.deliver(delivery_id) == "failed"
    with runtime.session_scope() as session:
        refused = session.get(WebhookDelivery, delivery_id)
        assert refused.state == "failed" and refused.last_error.startswith("Refused")
        assert "127.0.0.1" in refused.last_error and refused.attempts == 1
    assert receiver.received == []


def test_a_delivery_deleted_with_its_endpoint_during_the_attempt_is_not_recorded(runtime, monkeypatch):
    with runtime.session_scope() as session:
        endpoint = WebhookEndpoint(
            tenant_id="default",
            url="https://example.com/hook",
            events=["ping"],
            active=True,
            secret=endpoints.new_secret(),
        )
        session.add(endpoint)
        session.flush()
        endpoint_id, delivery_id = endpoint.id, record_ping(session, endpoint).id
        session.commit()

    def deleted_while_sending(_request):
        # The client deletes the endpoint while the request is on the wire;
        # its deliveries go with it (ON DELETE CASCADE).
        with runtime.session_scope() as session:
            endpoints.delete_endpoint(session, "default", endpoint_id)
        return delivery.Outcome(200, 5.0, "", None)

    monkeypatch.setattr(delivery, "_request", lambda *_args: None)
    monkeypatch.setattr(delivery, "_send", deleted_while_sending)
    assert delivery.deliver(delivery_id) == "succeeded"
    with runtime.session_scope() as session:
        assert session.get(WebhookDelivery, delivery_id) is None
