"""Delivering webhook events: one signed POST per attempt, recorded, retried
on WEBHOOK_RETRY_SCHEDULE, until a 2xx answer or the schedule runs out.

An attempt first claims its delivery row (its next attempt moved a lease
ahead), so two messages for one delivery never send it twice at once, and a
worker that dies mid-attempt leaves a row beat's sweep sends again when the
lease runs out: at least once, always with the same `webhook-id`.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import func, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from app.config import settings
from app.extensions import celery, db
from app.models import WebhookDelivery, WebhookEndpoint, utcnow
from app.services.jobs.kinds import WEBHOOKS_QUEUE
from app.services.webhooks.endpoints import tenant_secret
from app.services.webhooks.network import UnsafeUrl, resolve

log = logging.getLogger(__name__)

TIMEOUT_SECONDS = 15
# Longer than an attempt can take: until then no one else attempts the delivery.
ATTEMPT_LEASE = timedelta(seconds=TIMEOUT_SECONDS + 5)
ORDER_WAIT_SECONDS = 1
RESPONSE_EXCERPT = 1024
SWEEP_BATCH = 500


@dataclass(frozen=True)
class Request:
    url: str
    body: str
    headers: dict[str, str]
    sni_hostname: str | None


@dataclass(frozen=True)
class Outcome:
    status_code: int | None
    latency_ms: float | None
    response: str | None
    error: str | None
    final: bool = False  # no retry can help (refused address, disabled endpoint)


def dispatch(delivery_id: str, countdown: float = 0) -> None:
    celery.send_task(
        "quarry.webhooks.deliver", args=[delivery_id], queue=WEBHOOKS_QUEUE, countdown=countdown or None
    )


def deliver(delivery_id: str) -> str:
    """Make the delivery's next attempt if it is due; returns what happened."""
    now = utcnow()
    with db.session_scope() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.state != "pending" or delivery.next_attempt_at > now:
            return "skipped"
        if _waits_for_an_earlier_event(session, delivery):
            session.execute(_move(delivery, now, next_attempt_at=now + timedelta(seconds=ORDER_WAIT_SECONDS)))
            session.commit()
            dispatch(delivery_id, countdown=ORDER_WAIT_SECONDS)
            return "waiting"
        claimed = session.execute(
            _move(delivery, now, next_attempt_at=now + ATTEMPT_LEASE, attempts=WebhookDelivery.attempts + 1)
        ).rowcount
        session.commit()
        if not claimed:
            return "skipped"
        prepared = _prepare(session, delivery, now)
    outcome = _send(prepared) if isinstance(prepared, Request) else prepared
    with db.session_scope() as session:
        retry_in = _record(session, delivery_id, outcome, utcnow())
        session.commit()
    if retry_in is not None:
        dispatch(delivery_id, countdown=retry_in)
    return "succeeded" if outcome.status_code and 200 <= outcome.status_code < 300 else "failed"


def sweep_due_deliveries(session: Session) -> int:
    """Beat: send every delivery whose attempt is due but was not made (its
    message was lost, or its worker died mid-attempt)."""
    due = session.scalars(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= utcnow())
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(SWEEP_BATCH)
    ).all()
    for delivery_id in due:
        dispatch(delivery_id)
    return len(due)


def delivery_stats(session: Session, recent: int = 200) -> dict:
    """Deliveries by state, and the delay from an event to its first attempt
    over the most recent ones (p50, p95, in ms): for /health."""
    states = dict(session.execute(select(WebhookDelivery.state, func.count()).group_by(WebhookDelivery.state)).all())
    rows = session.execute(
        select(WebhookDelivery.created_at, WebhookDelivery.first_attempt_at)
        .where(WebhookDelivery.first_attempt_at.is_not(None))
        .order_by(WebhookDelivery.created_at.desc())
        .limit(recent)
    ).all()
    delays = sorted((first - created).total_seconds() * 1000 for created, first in rows)
    percentile = lambda q: round(delays[min(len(delays) - 1, int(q * len(delays)))], 1) if delays else None  # noqa: E731
    return {
        "deliveries": {state: states.get(state, 0) for state in ("pending", "succeeded", "failed")},
        "first_attempt_delay_ms": {"p50": percentile(0.5), "p95": percentile(0.95), "of_last": len(delays)},
    }


def _move(delivery: WebhookDelivery, now: datetime, **values):
    """The conditional UPDATE that claims or postpones an attempt."""
    return (
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery.id,
            WebhookDelivery.state == "pending",
            WebhookDelivery.next_attempt_at == delivery.next_attempt_at,
        )
        .values(updated_at=now, **values)
    )


def _waits_for_an_earlier_event(session: Session, delivery: WebhookDelivery) -> bool:
    """A job's events reach each receiver in the order they happened."""
    if delivery.job_id is None:
        return False
    same_receiver = (
        WebhookDelivery.endpoint_id == delivery.endpoint_id
        if delivery.endpoint_id
        else (WebhookDelivery.endpoint_id.is_(None) & (WebhookDelivery.url == delivery.url))
    )
    earlier = session.scalar(
        select(WebhookDelivery.id)
        .where(
            WebhookDelivery.job_id == delivery.job_id,
            same_receiver,
            WebhookDelivery.state == "pending",
            WebhookDelivery.created_at < delivery.created_at,
        )
        .limit(1)
    )
    return earlier is not None


def _prepare(session: Session, delivery: WebhookDelivery, now: datetime) -> Request | Outcome:
    """The signed request, or why there is none."""
    if delivery.endpoint_id is not None:
        endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or not endpoint.active:
            return Outcome(None, None, None, "The endpoint is disabled.", final=True)
        secrets = [endpoint.secret]
        if endpoint.previous_secret and endpoint.previous_secret_expires_at > now:
            secrets.append(endpoint.previous_secret)
    else:
        secrets = [tenant_secret(session, delivery.tenant_id)]
    try:
        target = resolve(delivery.url, allow_private=settings.webhook_allow_private_networks)
    except UnsafeUrl as exc:
        return Outcome(None, None, None, f"Refused: {exc}", final=True)
    body = json.dumps(delivery.payload, separators=(",", ":"))
    signature = " ".join(Webhook(secret).sign(delivery.event_id, now, body) for secret in secrets)
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": "Quarry-Webhooks/1",
        "webhook-id": delivery.event_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    # Connect to the address that was checked; TLS still verifies the name.
    sni = target.host if target.scheme == "https" else None
    return Request(target.url_for(target.addresses[0]), body, headers, sni)


_client: httpx.Client | None = None
_client_pid: int | None = None
_client_lock = threading.Lock()


def _http() -> httpx.Client:
    """One client per process (made after the fork): building one per attempt
    costs an SSL context each time. No connection is kept alive: connections
    go to addresses, and a kept TLS connection to one host must never carry
    a request for another host on the same address."""
    global _client, _client_pid
    with _client_lock:
        if _client is None or _client_pid != os.getpid():
            _client = httpx.Client(
                timeout=TIMEOUT_SECONDS,
                follow_redirects=False,
                trust_env=False,
                limits=httpx.Limits(max_keepalive_connections=0),
            )
            _client_pid = os.getpid()
        return _client


def _send(request: Request) -> Outcome:
    started = time.perf_counter()
    extensions = {"sni_hostname": request.sni_hostname} if request.sni_hostname else None
    try:
        response = _http().post(request.url, content=request.body, headers=request.headers, extensions=extensions)
    except httpx.HTTPError as exc:
        return Outcome(None, _since(started), None, f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT])
    return Outcome(response.status_code, _since(started), response.text[:RESPONSE_EXCERPT], None)


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _record(session: Session, delivery_id: str, outcome: Outcome, now: datetime) -> int | None:
    """Write the attempt; returns the seconds until the next one, if any."""
    delivery = session.get(WebhookDelivery, delivery_id)
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery.endpoint_id else None
    succeeded = outcome.status_code is not None and 200 <= outcome.status_code < 300
    error = outcome.error or (None if succeeded else f"HTTP {outcome.status_code}")
    delivery.attempt_log = [
        *delivery.attempt_log,
        {
            "at": now.isoformat(),
            "status_code": outcome.status_code,
            "latency_ms": outcome.latency_ms,
            "response": outcome.response,
            "error": error,
        },
    ]
    delivery.first_attempt_at = delivery.first_attempt_at or now
    delivery.last_status_code, delivery.last_error = outcome.status_code, error
    schedule = settings.webhook_retry_schedule
    if succeeded:
        delivery.state, delivery.next_attempt_at = "succeeded", None
        if endpoint is not None:
            endpoint.failing_since = None
        return None
    if endpoint is not None and outcome.status_code == 410:
        _disable(endpoint, "The receiver answered 410 Gone.")
    elif endpoint is not None and not outcome.final:
        endpoint.failing_since = endpoint.failing_since or now
        if now - endpoint.failing_since >= timedelta(hours=settings.webhook_disable_after_hours):
            _disable(endpoint, f"Every delivery failed for {settings.webhook_disable_after_hours:g} hours.")
    if outcome.final or outcome.status_code == 410 or delivery.attempts >= len(schedule):
        delivery.state, delivery.next_attempt_at = "failed", None
        return None
    retry_in = schedule[delivery.attempts]
    delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    return retry_in


def _disable(endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.active, endpoint.disabled_reason = False, reason
    log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
