"""Delivery in process: the SSRF guard at delivery time, where the address
actually connected to is checked (here with private networks not allowed)."""

from __future__ import annotations

import pytest

from app.config import settings
from app.models import WebhookDelivery, WebhookEndpoint
from app.services.webhooks import delivery, endpoints
from app.services.webhooks.events import record_ping
from tests.integration.receiver import Receiver


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
            tenant_id="default", url=f"http://localhost:{receiver.port}/hook", events=["ping"],
            active=True, secret=endpoints.new_secret(),
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
