"""The job queues on the broker: sending a job's message, and how many
messages wait in each queue.

Messages carry a priority. Ordinary jobs go out at NORMAL_PRIORITY; a job
re-sent by recovery, and the recovery task itself, at RECOVERY_PRIORITY, so
they run ahead of any backlog instead of waiting behind it (on Redis, kombu
keeps one list per priority step and takes the highest first; RabbitMQ
declares each queue with x-max-priority). A key's jobs
past its fair share in flight go out at BULK_PRIORITY, behind every other
key's ordinary ones: one key submitting in a tight loop delays only itself.
"""

from __future__ import annotations

import logging
import time

from kombu.exceptions import ChannelError

from app.extensions import celery, settings
from app.logs import request_id_var
from app.services.jobs.kinds import job_queues, kind_of

log = logging.getLogger(__name__)

# 0 first, as Redis reads them (kombu rounds to its steps: 0, 3, 6, 9). The
# job row keeps these; wire_priority() turns them round for AMQP.
RECOVERY_PRIORITY = 0
NORMAL_PRIORITY = 5
BULK_PRIORITY = 9
# RabbitMQ queues are declared with this x-max-priority (app/celery_config.py).
AMQP_MAX_PRIORITY = 9


def is_amqp(broker_url: str) -> bool:
    return broker_url.split("://", 1)[0] in ("amqp", "amqps", "pyamqp")


def wire_priority(priority: int, broker_url: str | None = None) -> int:
    """The message priority the broker reads as `priority`: RabbitMQ takes
    the highest number first, Redis the lowest."""
    url = settings.celery_broker_url if broker_url is None else broker_url
    return AMQP_MAX_PRIORITY - priority if is_amqp(url) else priority


def send_job(job_id: str, job_type: str, *, priority: int = NORMAL_PRIORITY, collection: str | None = None) -> None:
    """Put a job's message on its kind's queue (task id == job id)."""
    kind = kind_of(job_type)
    celery.send_task(
        kind.task,
        args=[job_id],
        task_id=job_id,
        queue=kind.queue,
        priority=wire_priority(priority),
        # The worker's log lines for this job carry the submitting request's id.
        headers={"request_id": request_id_var.get()},
        # What Flower shows as the task's arguments: the task name says the
        # job's type, this its collection.
        argsrepr=f"('{job_id}', collection={collection!r})" if collection else None,
    )


def queue_sizes() -> dict[str, int]:
    """Messages waiting in each job queue, every priority included. Raises
    when the broker does not answer."""
    with celery.connection_for_write() as connection:
        return {name: _queue_size(connection, name) for name in job_queues()}


_depth_cache: tuple[float, int | None] = (0.0, None)


def queue_depth() -> int | None:
    """Messages waiting in all job queues, cached for a second; None when the
    broker cannot say (a submit's send will answer for it)."""
    global _depth_cache
    checked, depth = _depth_cache
    if time.monotonic() - checked < 1.0:
        return depth
    try:
        depth = sum(queue_sizes().values())
    except Exception as exc:
        log.warning("queue depth unavailable: %s", exc)
        depth = None
    _depth_cache = (time.monotonic(), depth)
    return depth


def _queue_size(connection, name: str) -> int:
    try:
        return connection.default_channel.queue_declare(queue=name, passive=True).message_count
    except ChannelError:  # never declared yet, so nothing waits in it
        return 0
