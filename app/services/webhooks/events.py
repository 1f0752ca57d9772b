"""The outbox. An event is a delivery row per receiver, written in the same
transaction as the change that causes it (a job's transition, a checkpoint,
a ping), so no committed change loses its event and no rolled-back one sends
one. Each new delivery's task is sent once that transaction commits
(after_commit); if that send fails, the sweep sends it (delivery.py)."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from app.extensions import after_commit, settings
from app.models import Job, WebhookDelivery, WebhookEndpoint, utcnow
from app.services.jobs.serialize import job_to_dict

log = logging.getLogger(__name__)

JOB_EVENTS = ("job.succeeded", "job.failed", "job.cancelled", "job.progress")
EVENT_TYPES = (*JOB_EVENTS, "ping")
ALL_EVENTS = "*"
# What a job's own callback_url receives unless callback_events says otherwise.
DEFAULT_CALLBACK_EVENTS = ("job.succeeded", "job.failed", "job.cancelled")


def record_job_events(session: Session, job: Job | str, event_types: list[str]) -> int:
    """Write each of `event_types` for the job (given as it now is, or by id),
    with the job's JSON as a poll returns it now, for every receiver that
    wants it. Returns how many."""
    if isinstance(job, str):
        found = session.get(Job, job, populate_existing=True)
        if found is None:
            return 0
        job = found
    endpoints = session.scalars(
        select(WebhookEndpoint).where(WebhookEndpoint.tenant_id == job.tenant_id, WebhookEndpoint.active.is_(True))
    ).all()
    written, as_polled = 0, None
    for event_type in event_types:
        targets = _receivers(job, endpoints, event_type)
        if targets:
            as_polled = as_polled or job_to_dict(job)  # once for all the events
            body = envelope(event_type, {"job": as_polled})
            for endpoint_id, url in targets:
                _add(session, job.tenant_id, endpoint_id, url, body, job_id=job.id)
        written += len(targets)
    return written


def record_progress_if_due(session: Session, job_id: str, last_event_at: datetime | None, now: datetime) -> None:
    """A job.progress event at most once per WEBHOOK_PROGRESS_INTERVAL_SECONDS;
    `last_event_at` is what the checkpoint's own UPDATE returned."""
    interval = timedelta(seconds=settings.webhook_progress_interval_seconds)
    if last_event_at is not None and now - last_event_at < interval:
        return
    session.execute(update(Job).where(Job.id == job_id).values(progress_event_at=now))
    record_job_events(session, job_id, ["job.progress"])


def record_ping(session: Session, endpoint: WebhookEndpoint) -> WebhookDelivery:
    body = envelope("ping", {"webhook": {"id": endpoint.id, "url": endpoint.url}})
    return _add(session, endpoint.tenant_id, endpoint.id, endpoint.url, body)


def envelope(event_type: str, data: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": f"evt_{uuid.uuid4().hex}",
        "type": event_type,
        "created_at": utcnow().isoformat(),
        "data": data,
    }


def _receivers(job: Job, endpoints: Sequence[WebhookEndpoint], event_type: str) -> list[tuple[str | None, str]]:
    targets: list[tuple[str | None, str]] = [
        (endpoint.id, endpoint.url)
        for endpoint in endpoints
        if event_type in endpoint.events or ALL_EVENTS in endpoint.events
    ]
    params = job.params or {}
    wanted = params.get("callback_events") or DEFAULT_CALLBACK_EVENTS
    if params.get("callback_url") and event_type in wanted:
        targets.append((None, params["callback_url"]))
    return targets


def _add(
    session: Session,
    tenant_id: str,
    endpoint_id: str | None,
    url: str,
    body: dict[str, Any],
    *,
    job_id: str | None = None,
) -> WebhookDelivery:
    now = utcnow()
    delivery = WebhookDelivery(
        id=uuid.uuid4().hex,
        tenant_id=tenant_id,
        endpoint_id=endpoint_id,
        url=url,
        job_id=job_id,
        event_id=body["id"],
        event_type=body["type"],
        payload=body,
        state="pending",
        attempts=0,
        attempt_log=[],
        next_attempt_at=now + timedelta(seconds=settings.webhook_retry_schedule[0]),
        created_at=now,
        updated_at=now,
    )
    session.add(delivery)
    send_after_commit(session, delivery.id)
    return delivery


def send_after_commit(session: Session, delivery_id: str) -> None:
    """Send the delivery's task once the session's transaction commits."""
    after_commit(session, lambda: _send(delivery_id))


def _send(delivery_id: str) -> None:
    from app.services.webhooks.delivery import send_delivery  # the sending side imports this module

    try:
        send_delivery(delivery_id, countdown=settings.webhook_retry_schedule[0])
    except Exception as exc:  # the broker is down: the sweep sends it later
        log.warning("webhook delivery %s not sent now, the sweep will: %s", delivery_id, exc)
