"""Celery's settings, from the Settings and the registry of job kinds: the
web sends tasks with them, workers and beat run with them (app/runtime.py
applies them)."""

from __future__ import annotations

import ssl
from typing import Any

from kombu import Queue

from app.config import Settings
from app.services.jobs.broker import AMQP_MAX_PRIORITY, NORMAL_PRIORITY, RECOVERY_PRIORITY, is_amqp, wire_priority
from app.services.jobs.kinds import KINDS, MAINTENANCE_QUEUE, Task, worker_queues


def celery_config(settings: Settings) -> dict[str, Any]:
    return {
        **_broker(settings),
        **_delivery(settings),
        **_routing(settings),
        "beat_schedule": _beat_schedule(settings),
        # Events for Flower, from the workers: received, started, succeeded.
        # No task-sent event: it would cost every submit a publish, and
        # Flower follows a task from the worker's task-received.
        "worker_send_task_events": True,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
    }


def _broker(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {
        "broker_url": settings.celery_broker_url,
        "broker_connection_retry_on_startup": True,
        "broker_transport_options": _transport_options(settings),
        # Submits must fail fast when the broker is down: the API answers 503.
        "task_publish_retry": True,
        "task_publish_retry_policy": {"max_retries": 2, "interval_start": 0, "interval_step": 0.2, "interval_max": 0.5},
    }
    if settings.celery_broker_url.startswith("rediss://"):
        # The URL carries the check for Celery itself (app/config.py); Flower's
        # broker view reads it only from here.
        mode = ssl.VerifyMode[f"CERT_{settings.redis_ssl_cert_reqs.upper()}"]
        config["broker_use_ssl"] = {"ssl_cert_reqs": mode}
    return config


def _transport_options(settings: Settings) -> dict[str, Any]:
    if is_amqp(settings.celery_broker_url):
        # RabbitMQ hands a dead worker's unacknowledged message out again as
        # soon as its connection drops; priorities live in the queues
        # (x-max-priority, _routing).
        # Connecting takes a TCP and an AMQP handshake: on a loaded host 2 s
        # was seen to be too short for a web process's first submit.
        return {"connect_timeout": 4}
    return {
        # A message whose worker died is handed out again after this long;
        # the job lease (JOB_LEASE_SECONDS) recovers it much sooner, see
        # app/services/jobs/runner.py.
        "visibility_timeout": settings.broker_visibility_timeout,
        # One list per priority step, the highest (0) taken first: recovery
        # re-sends jobs at a higher priority than new ones (jobs/broker.py).
        "priority_steps": [0, 3, 6, 9],
        "socket_connect_timeout": 2,
    }


def _delivery(settings: Settings) -> dict[str, Any]:
    return {
        # Results live in the job row, not in a Celery result backend.
        "task_ignore_result": True,
        "task_serializer": "json",
        "result_serializer": "json",
        "accept_content": ["json"],
        # Nothing lost: a message is acknowledged only after its task finished,
        # and a task whose worker process died is put back on the queue.
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.job_time_limit_seconds,
        "task_time_limit": settings.job_time_limit_seconds + 60,
        # Pool size; torch threads per child are sized from it (workers/signals.py).
        "worker_concurrency": settings.worker_concurrency,
        # A new pool process loads the embedding model before it reports for
        # work, which takes far longer than billiard's 4 s default; a
        # replacement for a killed child would otherwise be killed in turn.
        "worker_proc_alive_timeout": float(settings.worker_start_timeout_seconds),
    }


def _routing(settings: Settings) -> dict[str, Any]:
    """Queues and routes come from the registry of job kinds."""
    # Redis keeps a list per priority step by itself; RabbitMQ orders by
    # priority only in queues declared with a maximum.
    arguments = {"x-max-priority": AMQP_MAX_PRIORITY} if is_amqp(settings.celery_broker_url) else None
    return {
        "task_queues": tuple(Queue(name, queue_arguments=arguments) for name in worker_queues()),
        "task_default_queue": MAINTENANCE_QUEUE,
        "task_routes": {
            **{kind.task: {"queue": kind.queue} for kind in KINDS.values()},
            **{str(task): {"queue": task.queue} for task in Task},
        },
        "task_default_priority": wire_priority(NORMAL_PRIORITY, settings.celery_broker_url),
    }


def _beat_schedule(settings: Settings) -> dict[str, Any]:
    recovery = {"priority": wire_priority(RECOVERY_PRIORITY, settings.celery_broker_url)}
    return {
        "recover-stuck-jobs": {
            "task": str(Task.RECOVER_STUCK_JOBS),
            "schedule": float(settings.recovery_interval_seconds),
            "options": recovery,
        },
        "sweep-webhook-deliveries": {
            "task": str(Task.SWEEP_WEBHOOK_DELIVERIES),
            "schedule": float(settings.webhook_sweep_interval_seconds),
            "options": recovery,
        },
        "sweep-staged-uploads": {"task": str(Task.SWEEP_STAGED_UPLOADS), "schedule": 3600.0},
        "purge-expired-jobs": {"task": str(Task.PURGE_EXPIRED_JOBS), "schedule": 3600.0},
    }
