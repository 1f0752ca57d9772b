"""Verify Quarry's webhooks where they are received.

Needs only the `standardwebhooks` package (no Flask, no Celery, nothing of
Quarry's server side):

    from quarry_webhooks import verify, WebhookVerificationError

    event = verify(request.get_data(), request.headers, secret)  # "whsec_…"

Pass several secrets while rotating one; any that matches will do.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

__all__ = ["WebhookVerificationError", "verify"]


def verify(body: bytes | str, headers: Mapping[str, str], secrets: str | Iterable[str]) -> dict[str, Any]:
    """The event, once its signature and timestamp (within 5 minutes) check
    out against one of `secrets`; WebhookVerificationError otherwise."""
    candidates = [secrets] if isinstance(secrets, str) else list(secrets)
    failure = WebhookVerificationError("No secret given")
    for secret in candidates:
        try:
            return Webhook(secret).verify(body, dict(headers))
        except WebhookVerificationError as exc:
            failure = exc
    raise failure
