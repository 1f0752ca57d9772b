"""Delivering webhook events: one signed POST per attempt, recorded, retried
on WEBHOOK_RETRY_SCHEDULE, until a 2xx answer or the schedule runs out.

An attempt first claims its delivery row (its next attempt moved a lease
ahead), so two messages for one delivery never send it twice at once, and a
worker that dies mid-attempt leaves a row a sweep (beat's or a worker's) sends again when the
lease runs out: at least once, always with the same `webhook-id`.
"""

from __future__ import annotations

import json
import logging
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from standardwebhooks.webhooks import Webhook

from app import metrics
from app.extensions import PerProcess, celery, db, settings
from app.models import WebhookDelivery, WebhookEndpoint, execute_counted, utcnow
from app.services.jobs.kinds import Task
from app.services.stats import percentile
from app.services.webhooks.endpoints import tenant_secret
from app.services.webhooks.network import UnsafeUrl, checked_target

log = logging.getLogger(__name__)

# Beyond WEBHOOK_TIMEOUT_SECONDS, an attempt's lease covers its bookkeeping:
# until it runs out no one else attempts the delivery.
LEASE_MARGIN_SECONDS = 5
# Retries further off than this are left to the sweep: a message held back
# longer would outlive the broker's visibility timeout and be handed out again.
LONGEST_COUNTDOWN = 60
# The sweep leaves a delivery this long past due for its own message first.
SWEEP_GRACE = timedelta(seconds=5)
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

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300 and self.error is None


def send_delivery(delivery_id: str, countdown: float = 0) -> None:
    if countdown > LONGEST_COUNTDOWN:
        return  # the sweep sends it when it is due
    celery.send_task(
        Task.DELIVER_WEBHOOK, args=[delivery_id], queue=Task.DELIVER_WEBHOOK.queue, countdown=countdown or None
    )


def deliver(delivery_id: str) -> str:
    """Make the delivery's next attempt if it is due; returns what happened."""
    now = utcnow()
    with db.session_scope() as session:
        delivery = session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.state != "pending" or _due_at(delivery) > now:
            return "skipped"
        earlier = _earlier_pending(session, delivery)
        if earlier is not None:
            # A job's events reach a receiver in order: this one waits, without
            # polling, until the earlier one ends and _record() sends it.
            session.execute(_move(delivery, now, next_attempt_at=max(_due_at(earlier), now) + _attempt_lease()))
            session.commit()
            return "waiting"
        claimed = execute_counted(
            session, _move(delivery, now, next_attempt_at=now + _attempt_lease(), attempts=WebhookDelivery.attempts + 1)
        )
        session.commit()
        if not claimed:
            return "skipped"
        receiver = _receiver(session, delivery, now)
        # Read while the row is at hand: after the session, no attribute may
        # need loading (the UPDATE above may have expired some).
        event = Event(delivery.event_id, json.dumps(delivery.payload, separators=(",", ":")))
        session.commit()  # no transaction stays open over DNS and the network
    outcome = _send(_request(event, receiver, now)) if isinstance(receiver, Receiver) else receiver
    with db.session_scope() as session:
        to_send = _record(session, delivery_id, outcome, utcnow())
        session.commit()
    for next_id, countdown in to_send:
        send_delivery(next_id, countdown)
    result = "succeeded" if outcome.succeeded else "failed"
    metrics.WEBHOOK_DELIVERIES.labels(result).inc()
    return result


def sweep_due_deliveries(session: Session) -> int:
    """Beat: send every delivery whose attempt is due but was not made (its
    message was lost, or its worker died mid-attempt)."""
    due = session.scalars(
        select(WebhookDelivery.id)
        .where(WebhookDelivery.state == "pending", WebhookDelivery.next_attempt_at <= utcnow() - SWEEP_GRACE)
        .order_by(WebhookDelivery.next_attempt_at)
        .limit(SWEEP_BATCH)
    ).all()
    for delivery_id in due:
        send_delivery(delivery_id)
    return len(due)


def purge_old_deliveries(session: Session, *, now: datetime | None = None) -> int:
    """Finished deliveries go with the jobs they were about, after JOB_RETENTION_DAYS."""
    cutoff = (now or utcnow()) - timedelta(days=settings.job_retention_days)
    deleted = execute_counted(
        session, delete(WebhookDelivery).where(WebhookDelivery.state != "pending", WebhookDelivery.created_at < cutoff)
    )
    session.commit()
    return deleted


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
    # (first is never None: the query leaves those rows out)
    delays = [(first - created).total_seconds() * 1000 for created, first in rows if first is not None]
    return {
        "deliveries": {state: states.get(state, 0) for state in ("pending", "succeeded", "failed")},
        "first_attempt_delay_ms": {
            "p50": percentile(delays, 50),
            "p95": percentile(delays, 95),
            "of_last": len(delays),
        },
    }


def _due_at(delivery: WebhookDelivery) -> datetime:
    """When a pending delivery's next attempt is due: whatever makes a delivery
    pending sets it, and only the end of its attempts clears it."""
    assert delivery.next_attempt_at is not None, f"pending delivery {delivery.id} has no next_attempt_at"
    return delivery.next_attempt_at


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


def _same_receiver(delivery: WebhookDelivery):
    if delivery.endpoint_id:
        return WebhookDelivery.endpoint_id == delivery.endpoint_id
    return WebhookDelivery.endpoint_id.is_(None) & (WebhookDelivery.url == delivery.url)


def _earlier_pending(session: Session, delivery: WebhookDelivery) -> WebhookDelivery | None:
    """An earlier event of the same job for the same receiver, not ended yet."""
    if delivery.job_id is None:
        return None
    return session.scalars(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.job_id == delivery.job_id,
            _same_receiver(delivery),
            WebhookDelivery.state == "pending",
            WebhookDelivery.created_at < delivery.created_at,
        )
        .order_by(WebhookDelivery.created_at)
        .limit(1)
    ).first()


def _next_in_line(session: Session, delivery: WebhookDelivery, now: datetime) -> list[tuple[str, float]]:
    """The job's next event for this receiver, now that this one has ended."""
    if delivery.job_id is None:
        return []
    waiting = session.scalars(
        select(WebhookDelivery)
        .where(
            WebhookDelivery.job_id == delivery.job_id,
            _same_receiver(delivery),
            WebhookDelivery.state == "pending",
            WebhookDelivery.created_at > delivery.created_at,
        )
        .order_by(WebhookDelivery.created_at)
        .limit(1)
    ).first()
    if waiting is None:
        return []
    waiting.next_attempt_at = now
    return [(waiting.id, 0)]


@dataclass(frozen=True)
class Receiver:
    url: str
    secrets: list[str]


@dataclass(frozen=True)
class Event:
    id: str
    body: str  # the payload as sent


def _receiver(session: Session, delivery: WebhookDelivery, now: datetime) -> Receiver | Outcome:
    """Where the delivery goes and what signs it, or why it goes nowhere."""
    if delivery.endpoint_id is None:
        return Receiver(delivery.url, [tenant_secret(session, delivery.tenant_id)])
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id)
    if endpoint is None or not endpoint.active:
        return Outcome(None, None, None, "The endpoint is disabled.", final=True)
    secrets = [endpoint.secret]
    expires_at = endpoint.previous_secret_expires_at  # set together with previous_secret
    if endpoint.previous_secret and expires_at is not None and expires_at > now:
        secrets.append(endpoint.previous_secret)
    return Receiver(endpoint.url, secrets)  # its URL now, if it was changed since


def _request(event: Event, receiver: Receiver, now: datetime) -> Request | Outcome:
    """The signed request, to an address that passed the SSRF guard."""
    try:
        target = checked_target(receiver.url, allow_private=settings.webhook_allow_private_networks)
    except UnsafeUrl as exc:
        return Outcome(None, None, None, f"Refused: {exc}", final=True)
    signature = " ".join(Webhook(secret).sign(event.id, now, event.body) for secret in receiver.secrets)
    headers = {
        "Host": target.host_header,
        "Content-Type": "application/json",
        "User-Agent": "Quarry-Webhooks/1",
        "webhook-id": event.id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": signature,
    }
    # Connect to the address that was checked; TLS still verifies the name.
    sni = target.host if target.scheme == "https" else None
    return Request(target.url_for(target.addresses[0]), event.body, headers, sni)


_http = PerProcess(
    # Built once per process: building one per attempt costs an SSL context
    # each time. No connection is kept alive: connections go to addresses,
    # and a kept TLS connection to one host must never carry a request for
    # another host on the same address.
    lambda: httpx.Client(
        timeout=settings.webhook_timeout_seconds,
        follow_redirects=False,
        trust_env=False,
        limits=httpx.Limits(max_keepalive_connections=0),
    )
)


def _send(request: Request | Outcome) -> Outcome:
    """POST it; a 2xx counts only if it came within WEBHOOK_TIMEOUT_SECONDS in all."""
    if isinstance(request, Outcome):
        return request
    started, limit = time.perf_counter(), settings.webhook_timeout_seconds
    extensions = {"sni_hostname": request.sni_hostname} if request.sni_hostname else None
    excerpt = b""
    try:
        with _http.get().stream(
            "POST", request.url, content=request.body, headers=request.headers, extensions=extensions
        ) as response:
            for chunk in response.iter_bytes():
                excerpt += chunk
                if len(excerpt) >= RESPONSE_EXCERPT or _since(started) > limit * 1000:
                    break
    except httpx.HTTPError as exc:
        return Outcome(None, _since(started), None, f"{type(exc).__name__}: {exc}"[:RESPONSE_EXCERPT])
    latency = _since(started)
    late = f"No complete answer within {limit} s." if latency > limit * 1000 else None
    text = excerpt[:RESPONSE_EXCERPT].decode("utf-8", errors="replace")
    return Outcome(response.status_code, latency, text, late)


def _attempt_lease() -> timedelta:
    return timedelta(seconds=settings.webhook_timeout_seconds + LEASE_MARGIN_SECONDS)


def _since(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 1)


def _record(session: Session, delivery_id: str, outcome: Outcome, now: datetime) -> list[tuple[str, float]]:
    """Write the attempt; returns the deliveries to send now (with countdowns)."""
    delivery = session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        # Deleted during the attempt: deleting an endpoint deletes its
        # deliveries (ON DELETE CASCADE). Nothing is left to record or send.
        return []
    endpoint = session.get(WebhookEndpoint, delivery.endpoint_id) if delivery.endpoint_id else None
    error = outcome.error or (None if outcome.succeeded else f"HTTP {outcome.status_code}")
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
    if outcome.succeeded:
        delivery.state, delivery.next_attempt_at = "succeeded", None
        if endpoint is not None:
            endpoint.failing_since = None
        return _next_in_line(session, delivery, now)
    if endpoint is not None:
        _note_failure(endpoint, outcome, now)
    schedule = settings.webhook_retry_schedule
    if outcome.final or outcome.status_code == 410 or delivery.attempts >= len(schedule):
        delivery.state, delivery.next_attempt_at = "failed", None
        return _next_in_line(session, delivery, now)
    retry_in = schedule[delivery.attempts]
    delivery.next_attempt_at = now + timedelta(seconds=retry_in)
    return [(delivery.id, retry_in)]


def _note_failure(endpoint: WebhookEndpoint, outcome: Outcome, now: datetime) -> None:
    """410 disables the endpoint at once; failing long enough disables it too."""
    if outcome.status_code == 410:
        _disable(endpoint, "The receiver answered 410 Gone.")
    elif not outcome.final:
        endpoint.failing_since = endpoint.failing_since or now
        if now - endpoint.failing_since >= timedelta(hours=settings.webhook_disable_after_hours):
            _disable(endpoint, f"Every delivery failed for {settings.webhook_disable_after_hours:g} hours.")


def _disable(endpoint: WebhookEndpoint, reason: str) -> None:
    endpoint.active, endpoint.disabled_reason = False, reason
    log.warning("webhook endpoint %s disabled: %s", endpoint.id, reason)
