"""Delivery in process: the SSRF guard at delivery time, where the address
actually connected to is checked (here with private networks not allowed),
and a delivery deleted while its attempt was on the wire."""

from __future__ import annotations

import socket

import httpx
import pytest

from app.extensions import settings
from app.models import WebhookDelivery, WebhookEndpoint
from app.services.webhooks import delivery, endpoints
from app.services.webhooks.events import record_ping
from devstack.receiver import Receiver


def pinged_endpoint(runtime, url: str) -> tuple[str, str]:
    """An endpoint registered straight in the database (no check at
    registration, as if its name resolved elsewhere then) and a ping for it:
    their ids."""
    with runtime.session_scope() as session:
        endpoint = WebhookEndpoint(
            tenant_id="default", url=url, events=["ping"], active=True, secret=endpoints.new_secret()
        )
        session.add(endpoint)
        session.flush()
        endpoint_id, delivery_id = endpoint.id, record_ping(session, endpoint).id
        session.commit()
    return endpoint_id, delivery_id


@pytest.fixture
def receiver():
    started = Receiver().start()
    yield started
    started.stop()


def test_a_host_that_resolves_to_loopback_is_refused_at_delivery(runtime, receiver):
    assert settings.webhook_allow_private_networks is False
    _, delivery_id = pinged_endpoint(runtime, f"http://localhost:{receiver.port}/hook")

    assert delivery.deliver(delivery_id) == "failed"
    with runtime.session_scope() as session:
        refused = session.get(WebhookDelivery, delivery_id)
        assert refused.state == "failed" and refused.last_error.startswith("Refused")
        assert "127.0.0.1" in refused.last_error and refused.attempts == 1
    assert receiver.received == []


def test_a_delivery_deleted_with_its_endpoint_during_the_attempt_is_not_recorded(runtime, monkeypatch):
    endpoint_id, delivery_id = pinged_endpoint(runtime, "https://example.com/hook")

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


@pytest.mark.parametrize(
    "address",
    [
        "::ffff:127.0.0.1",  # IPv4-mapped
        "::127.0.0.1",  # IPv4-compatible
        "64:ff9b::7f00:1",  # NAT64
        "64:ff9b:1::a00:1",  # NAT64 for local use
        "2002:a9fe:a9fe::",  # 6to4 of 169.254.169.254
        "2001:0:4136:e378:8000:63bf:80ff:fffe",  # Teredo, client 127.0.0.1
    ],
)
def test_a_name_resolving_to_an_ipv6_form_of_a_private_address_is_refused_unconnected(runtime, monkeypatch, address):
    """At delivery, the address the name resolves to now is what is judged:
    the IPv4 address carried inside it, before any connection is made."""
    assert settings.webhook_allow_private_networks is False
    _, delivery_id = pinged_endpoint(runtime, "https://rebound.invalid/hook")

    def lookup(host, port, *args, **kwargs):
        assert host == "rebound.invalid"
        return [(socket.AF_INET6, socket.SOCK_STREAM, 6, "", (address, port, 0, 0))]

    def connect(*args, **kwargs):
        raise AssertionError("a refused address was connected to")

    monkeypatch.setattr(socket, "getaddrinfo", lookup)
    monkeypatch.setattr(httpx.HTTPTransport, "handle_request", connect)
    assert delivery.deliver(delivery_id) == "failed"
    with runtime.session_scope() as session:
        refused = session.get(WebhookDelivery, delivery_id)
        assert refused.last_error.startswith("Refused") and address in refused.last_error
