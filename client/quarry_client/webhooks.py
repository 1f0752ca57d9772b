"""Verify Quarry's webhooks where they are received (Standard Webhooks:
`webhook-id`, `webhook-timestamp`, `webhook-signature`):

    from quarry_client import webhooks

    event = webhooks.verify(secret, request.headers, request.get_data())

While a secret is rotated, deliveries carry a signature by each; pass the
secrets you hold as a list and any one that matches will do."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookVerificationError", "verify"]


def verify(secret: str | Iterable[str], headers: Mapping[str, str], body: bytes | str) -> dict[str, Any]:
    """The event (`id`, `type`, `created_at`, `data`), once its signature and
    timestamp (within 5 minutes of now) check out against `secret`;
    WebhookVerificationError otherwise."""
    candidates = [secret] if isinstance(secret, str) else list(secret)
    # Header names are case-insensitive; the library looks them up in lower case.
    lowered = {name.lower(): value for name, value in headers.items()}
    failure = WebhookVerificationError("No secret given")
    for candidate in candidates:
        try:
            return Webhook(candidate).verify(body, lowered)
        except WebhookVerificationError as exc:
            failure = exc
    raise failure
