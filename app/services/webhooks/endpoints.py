"""Subscriber endpoints and their secrets, a tenant's callback secret, and
the inspection and redelivery of an endpoint's deliveries."""

from __future__ import annotations

import base64
import secrets
from datetime import timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.extensions import settings
from app.models import Tenant, WebhookDelivery, WebhookEndpoint, is_row_id, utcnow
from app.services.errors import Conflict, NotFound, ValidationFailed
from app.services.pagination import paginate
from app.services.webhooks.events import record_ping, send_after_commit
from app.services.webhooks.network import UnsafeUrl, checked_target


def new_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of 32 random bytes."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(32)).decode()


def check_url(url: str, field: str) -> None:
    """Refuse a URL that may not receive webhooks (422 naming `field`)."""
    try:
        checked_target(url, allow_private=settings.webhook_allow_private_networks)
    except UnsafeUrl as exc:
        raise ValidationFailed(f"{field}: {exc}", errors=[{"field": field, "message": str(exc)}]) from None


def create_endpoint(
    session: Session, tenant_id: str, *, url: str, events: list[str], description: str | None = None
) -> WebhookEndpoint:
    """The new endpoint; its secret is shown to the client only now."""
    check_url(url, "url")
    endpoint = WebhookEndpoint(
        tenant_id=tenant_id,
        url=url,
        events=sorted(set(events)),
        description=description,
        active=True,
        secret=new_secret(),
    )
    session.add(endpoint)
    session.commit()
    return endpoint


def list_endpoints(session: Session, tenant_id: str, *, limit: int, cursor: str | None):
    query = select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == tenant_id)
    return paginate(session, query, WebhookEndpoint, limit, cursor)


def get_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    endpoint = session.get(WebhookEndpoint, endpoint_id) if is_row_id(endpoint_id) else None
    if endpoint is None or endpoint.tenant_id != tenant_id:
        raise NotFound(f"No webhook endpoint with id {endpoint_id!r}.")
    return endpoint


def update_endpoint(session: Session, tenant_id: str, endpoint_id: str, changes: dict[str, Any]) -> WebhookEndpoint:
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    if "url" in changes:
        check_url(changes["url"], "url")
        endpoint.url = changes["url"]
    if "events" in changes:
        endpoint.events = sorted(set(changes["events"]))
    if "description" in changes:
        endpoint.description = changes["description"]
    if "active" in changes:
        endpoint.active = changes["active"]
        if endpoint.active:  # re-enabled: its failure history starts again
            endpoint.disabled_reason, endpoint.failing_since = None, None
    session.commit()
    return endpoint


def delete_endpoint(session: Session, tenant_id: str, endpoint_id: str) -> None:
    session.delete(get_endpoint(session, tenant_id, endpoint_id))
    session.commit()


def rotate_secret(session: Session, tenant_id: str, endpoint_id: str) -> WebhookEndpoint:
    """A new secret; the old one keeps signing beside it for the grace period."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    endpoint.previous_secret = endpoint.secret
    endpoint.previous_secret_expires_at = utcnow() + timedelta(seconds=settings.webhook_secret_grace_seconds)
    endpoint.secret = new_secret()
    session.commit()
    return endpoint


def send_test(session: Session, tenant_id: str, endpoint_id: str) -> WebhookDelivery:
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    if not endpoint.active:
        raise Conflict("The endpoint is disabled; enable it (PATCH active: true) first.")
    delivery = record_ping(session, endpoint)
    session.commit()
    return delivery


def list_deliveries(session: Session, tenant_id: str, endpoint_id: str, *, limit: int, cursor: str | None):
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    return paginate(session, query, WebhookDelivery, limit, cursor)


def redeliver(session: Session, tenant_id: str, endpoint_id: str, delivery_id: str) -> WebhookDelivery:
    """Send a delivery again, with the same webhook-id, whatever its state."""
    endpoint = get_endpoint(session, tenant_id, endpoint_id)
    delivery = session.get(WebhookDelivery, delivery_id) if is_row_id(delivery_id) else None
    if delivery is None or delivery.endpoint_id != endpoint.id:
        raise NotFound(f"No delivery with id {delivery_id!r} for this endpoint.")
    if not endpoint.active:
        raise Conflict("The endpoint is disabled; enable it (PATCH active: true) first.")
    delivery.state, delivery.next_attempt_at = "pending", utcnow()
    send_after_commit(session, delivery.id)  # or the sweep, if the broker is down
    session.commit()
    return delivery


def tenant_secret(session: Session, tenant_id: str) -> str:
    """The secret that signs deliveries to per-job callback_urls; made on first
    use, once: of two first callers, the second reads the first one's."""
    current = select(Tenant.webhook_secret).where(Tenant.id == tenant_id)
    secret = session.scalar(current)
    if secret is None:
        session.rollback()  # write in a transaction of its own, not on a read snapshot
        session.execute(
            update(Tenant)
            .where(Tenant.id == tenant_id, Tenant.webhook_secret.is_(None))
            .values(webhook_secret=new_secret())
        )
        session.commit()
        secret = session.scalar(current)
    # Set now, unless the tenant has no row; every tenant with keys or jobs has one.
    assert secret is not None, f"no tenant {tenant_id!r}"
    return secret
