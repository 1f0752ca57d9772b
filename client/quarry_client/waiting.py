"""When to poll a job next, shared by every wait of both clients.

The service says when a poll is worth making: `poll_after_ms` in the job
(from the recent queue wait and run time of its type) and `Retry-After` on a
429 or 503. A wait follows those, within bounds, and always ends: by the
job's final status or by its deadline."""

from __future__ import annotations

import time
from dataclasses import dataclass

from quarry_client.errors import JobCancelled, JobFailed, WaitTimeout
from quarry_client.models import Job

# Without a hint (an older service, a proxy's answer), polls space out from
# half a second to this.
_FALLBACK_FIRST = 0.5
_FALLBACK_MAX = 10.0


@dataclass
class PollSchedule:
    """The deadline of one wait and the spacing of its polls."""

    timeout: float
    min_interval: float = 0.05
    max_interval: float = 30.0

    def __post_init__(self) -> None:
        self.deadline = time.monotonic() + self.timeout
        self._fallback = _FALLBACK_FIRST

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def expired(self) -> bool:
        return time.monotonic() >= self.deadline

    def delay(self, job: Job, retry_after: float | None = None) -> float:
        """Seconds until the next poll of `job`: a refusal's Retry-After (or
        a fallback after no answer), else the job's poll_after_ms within
        [min_interval, max_interval], else a growing fallback; never past the
        deadline (the last poll is made at it)."""
        if retry_after is not None:
            # The service's own word on when to come back: only the deadline cuts it.
            return min(max(retry_after, self.min_interval), self.remaining())
        wait = job.poll_after_ms / 1000 if job.poll_after_ms is not None else self.fallback()
        return min(max(wait, self.min_interval), self.max_interval, self.remaining())

    def fallback(self) -> float:
        """The next of a growing series of waits, for when nothing says how long."""
        wait, self._fallback = self._fallback, min(_FALLBACK_MAX, self._fallback * 2)
        return wait


class PollPlan:
    """One loop's plan for polling several jobs until all are final: which
    job is due next and how long until then. A single wait is a plan of one.
    `next()` raises WaitTimeout once the bound has passed with a job not final."""

    def __init__(self, jobs: list[Job], schedule: PollSchedule) -> None:
        self.jobs = jobs
        self.schedule = schedule
        now = time.monotonic()
        self._due = [now + schedule.delay(job) for job in jobs]

    def next(self) -> tuple[int, float] | None:
        """(which job to poll, seconds to sleep first), or None when all are final."""
        waiting = [i for i, job in enumerate(self.jobs) if not job.final]
        if not waiting:
            return None
        if self.schedule.expired():
            raise WaitTimeout(self.jobs[waiting[0]], self.schedule.timeout)
        index = min(waiting, key=self._due.__getitem__)
        return index, min(max(0.0, self._due[index] - time.monotonic()), self.schedule.remaining())

    def polled(self, index: int, job: Job) -> None:
        self.jobs[index] = job
        self._due[index] = time.monotonic() + self.schedule.delay(job)

    def refused(self, index: int, retry_after: float | None) -> None:
        """A poll was refused (its Retry-After) or got no usable answer (a
        growing back-off, not the job's poll hint)."""
        wait = retry_after if retry_after is not None else self.schedule.fallback()
        self._due[index] = time.monotonic() + self.schedule.delay(self.jobs[index], wait)


def outcome(job: Job) -> Job:
    """A final job, if it succeeded; its failure or cancellation raised."""
    if job.status == "failed":
        raise JobFailed(job)
    if job.status == "cancelled":
        raise JobCancelled(job)
    return job
