"""Every worker sweeps as well as beat: a timer in the worker's main process
asks, every RECOVERY_INTERVAL_SECONDS, for the jobs of dead workers to be
re-sent, and every WEBHOOK_SWEEP_INTERVAL_SECONDS for due webhook deliveries
to be sent again. Beat is one process; with it down, recovery goes on.

The sweeps run as tasks in a pool process (the main process only sends a
message); overlapping sweeps of several workers re-send each job once
(app/services/jobs/housekeeping.py). A sweep nobody took within its interval
expires: the next one does its work."""

from __future__ import annotations

import logging

from celery import bootsteps

from app.extensions import celery, settings
from app.services.jobs.broker import RECOVERY_PRIORITY, wire_priority
from app.services.jobs.kinds import Task

log = logging.getLogger(__name__)


class Sweeps(bootsteps.StartStopStep):
    requires = {"celery.worker.components:Timer"}

    def __init__(self, worker, **kwargs) -> None:
        super().__init__(worker, **kwargs)
        self.timers: list = []

    def start(self, worker) -> None:
        for task, interval in (
            (Task.RECOVER_STUCK_JOBS, settings.recovery_interval_seconds),
            (Task.SWEEP_WEBHOOK_DELIVERIES, settings.webhook_sweep_interval_seconds),
        ):
            self.timers.append(worker.timer.call_repeatedly(float(interval), send_sweep, (task, interval), priority=10))

    def stop(self, worker) -> None:
        for timer in self.timers:
            timer.cancel()
        self.timers.clear()


def send_sweep(task: Task, interval: int) -> None:
    try:
        celery.send_task(task, priority=wire_priority(RECOVERY_PRIORITY), expires=float(interval), retry=False)
    except Exception as exc:  # the broker is down: the next tick tries again
        log.warning("could not send %s: %s", task, exc)
