"""The chaos run's faults, on a schedule scaled to the run's length: a worker
killed with SIGKILL every tenth of the run (and a replacement started),
Redis crashed once and restarted once, PostgreSQL restarted once (when the
run has its own), beat killed and started again later, and webhook
receivers that fail, slow down and come back. Each fault's healing is
timed: from the fault until a probe search submitted after it succeeds, and
until every job queued or running when it struck is final."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field

from app.services.jobs import TERMINAL
from bench.chaos_ledger import Ledger, RecordingClient
from devstack.processes import Stack
from devstack.receiver import Receiver

REDIS_DOWN_S = 10.0
POSTGRES_DOWN_S = 15.0
# A fault not healed after this long is reported as not healed.
HEAL_GIVE_UP_S = 900.0
PROBE_TIMEOUT_S = 60.0
WORKER_KILLS = 9  # one every tenth of the run: every 2 minutes in 20
WEBHOOK_TIMEOUT_S = 15.0  # the service's default WEBHOOK_TIMEOUT_SECONDS


class ScriptedAnswers:
    """Put in place of a devstack Receiver's `statuses` list: the receiver
    answers `statuses.pop(0)` while the list is truthy, so this one never
    runs out, answers with the status of the current mode, and notes each
    answer (and the delay it was given) in the order the requests came."""

    def __init__(self) -> None:
        self.status, self.delay = 200, 0.0
        self.answered: list[tuple[int, float]] = []

    def __bool__(self) -> bool:
        return True

    def pop(self, _index: int) -> int:
        self.answered.append((self.status, self.delay))  # called under the receiver's lock
        return self.status


@dataclass(frozen=True)
class Arrival:
    event: dict
    webhook_id: str
    at: float
    status: int  # what the receiver answered
    delay: float  # how long it took to answer

    @property
    def succeeded(self) -> bool:
        """As the service sees it: a 2xx within its webhook timeout."""
        return 200 <= self.status < 300 and self.delay < WEBHOOK_TIMEOUT_S


class ScriptedReceiver:
    """A webhook receiver whose behaviour the fault script changes."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.answers = ScriptedAnswers()
        self.receiver = Receiver()
        self.receiver.statuses = self.answers  # type: ignore[assignment]
        self.episodes: list[dict] = []

    def start(self) -> ScriptedReceiver:
        self.receiver.start()
        return self

    def url(self, path: str) -> str:
        return self.receiver.url(f"/{self.name}{path}")

    def behave(self, status: int = 200, delay: float = 0.0, at: float | None = None) -> None:
        self.answers.status, self.answers.delay = status, delay
        self.receiver.delay = delay
        self.episodes.append({"at_s": at, "status": status, "delay_s": delay})

    def arrivals(self) -> list[Arrival]:
        return [Arrival(r.event, r.headers.get("webhook-id", r.headers.get("Webhook-Id", "")), r.at, status, delay)
                for r, (status, delay) in zip(self.receiver.received, self.answers.answered)]  # fmt: skip


@dataclass
class FaultRecord:
    fault: str
    planned_s: float
    started_s: float | None = None  # since the load began
    down_s: float | None = None
    heal_s: float | None = None  # fault start -> a probe search submitted after it succeeded
    probes: int = 0
    inflight: int = 0  # jobs queued or running when it struck
    inflight_final_s: float | None = None  # fault start -> all of those final
    inflight_not_final: list[str] = field(default_factory=list)
    note: str = ""


class Faults:
    """Runs the schedule in three threads (worker kills; Redis, PostgreSQL
    and beat; the receivers) and times each fault's healing in threads of
    its own."""

    def __init__(self, stack: Stack, workers: list, beat, postgres, receivers: dict[str, ScriptedReceiver],
                 client: Callable[[], RecordingClient], ledger: Ledger, probe_collection: str, log) -> None:  # fmt: skip
        self.stack, self.workers, self.beat, self.postgres = stack, workers, beat, postgres
        self.receivers, self.new_client, self.ledger = receivers, client, ledger
        self.probe_collection, self.log = probe_collection, log
        self.records: list[FaultRecord] = []
        self.stop = threading.Event()
        self.watches: list[threading.Thread] = []
        self.threads: list[threading.Thread] = []
        self.started = 0.0
        self.beat_record: FaultRecord | None = None

    def start(self, load_seconds: float) -> None:
        self.started = time.time()
        # Three timelines, so that a fault that takes a while (a restart, a
        # replacement worker loading its model) delays no other.
        timelines = (self._kill_workers, self._timeline, self._receiver_timeline)
        self.threads = [threading.Thread(target=target, args=(load_seconds,), daemon=True) for target in timelines]
        for thread in self.threads:
            thread.start()

    def plan(self, seconds: float) -> list[tuple[float, str, Callable[[FaultRecord], None]]]:
        """(when, what, action): the faults but the worker kills, each action
        returning once its fault is over."""
        events = [
            (0.15, "beat killed", self._kill_beat), (0.55, "beat restarted", self._restart_beat),
            (0.25, "redis crashed (SIGKILL)", self._crash_redis), (0.75, "redis restarted", self._restart_redis),
        ]  # fmt: skip
        if self.postgres is not None:
            events.append((0.45, "postgresql restarted", self._restart_postgres))
        return sorted((share * seconds, name, action) for share, name, action in events)

    def receiver_plan(self, seconds: float) -> list[tuple[float, str, Callable[[float], None]]]:
        """(when, what, change): how the webhook receivers behave, from then on."""
        a, b, c = (self.receivers[name] for name in ("a", "b", "c"))
        changes = [
            (0.32, "receiver a answers 503", lambda at: a.behave(503, at=at)),
            (0.40, "receiver a back", lambda at: a.behave(at=at)),
            (0.50, "receiver b slow (6 s)", lambda at: b.behave(200, 6.0, at=at)),
            (0.60, "receiver b back", lambda at: b.behave(at=at)),
            (0.62, "receiver c answers 500", lambda at: c.behave(500, at=at)),
            (0.68, "receiver c past the timeout (20 s)", lambda at: c.behave(200, 20.0, at=at)),
            (0.72, "receiver c back", lambda at: c.behave(at=at)),
        ]  # fmt: skip
        return [(share * seconds, name, change) for share, name, change in changes]

    def _timeline(self, seconds: float) -> None:
        for at, name, action in self.plan(seconds):
            if self.stop.wait(max(0.0, self.started + at - time.time())):
                return
            if name == "beat restarted":
                action(None)
            else:
                self._timed(FaultRecord(name, at), action)

    def _receiver_timeline(self, seconds: float) -> None:
        for at, name, change in self.receiver_plan(seconds):
            if self.stop.wait(max(0.0, self.started + at - time.time())):
                return
            change(self._now())
            self.log(f"fault: {name}")

    def _kill_workers(self, seconds: float) -> None:
        for k in range(1, WORKER_KILLS + 1):
            at = seconds * k / (WORKER_KILLS + 1)
            if self.stop.wait(max(0.0, self.started + at - time.time())):
                return
            self._timed(FaultRecord("worker killed (SIGKILL)", at), self._kill_worker)

    def _timed(self, record: FaultRecord, action: Callable[[FaultRecord], None]) -> None:
        """Snapshot the jobs in flight, strike, and watch the healing."""
        client = self.new_client()
        inflight = jobs_in_flight(client)
        record.inflight, record.started_s = len(inflight), self._now()
        self.records.append(record)
        self.log(f"fault: {record.fault} ({len(inflight)} jobs in flight)")
        struck = time.time()
        for target in (self._probe, self._follow):
            watch = threading.Thread(target=target, args=(record, struck, inflight), daemon=True)
            watch.start()
            self.watches.append(watch)
        try:
            action(record)
        except Exception as exc:  # noqa: BLE001 - a fault that could not be made is reported, the run goes on
            record.note = f"failed: {type(exc).__name__}: {exc}"
            self.log(f"fault {record.fault} failed: {record.note}")

    def _now(self) -> float:
        return round(time.time() - self.started, 1)

    # --- the faults ---

    def _kill_worker(self, record: FaultRecord) -> None:
        victim = self.workers.pop(0)  # the oldest
        self.stack.kill(victim)
        began = time.time()
        try:
            self.workers.append(self.stack.start_worker(concurrency=1))
            record.note = f"replacement ready after {time.time() - began:.0f} s"
        except TimeoutError:
            self.workers.append(self.stack.processes[-1])  # started, just slow to say it is ready
            record.note = "replacement not ready within 120 s"

    def _kill_beat(self, record: FaultRecord) -> None:
        self.stack.kill(self.beat)
        self.beat, self.beat_record = None, record

    def _restart_beat(self, _record) -> None:
        if self.beat is not None:
            return
        if self.beat_record is not None:
            self.beat_record.note = f"restarted at {self._now():.0f} s"
        log = self.stack.workdir / "beat.log"
        starts = log.read_bytes().count(b"beat: Starting")
        self.beat = self.stack.start_beat()  # returns at once: the log already says "Starting"
        deadline = time.time() + 60
        while log.read_bytes().count(b"beat: Starting") <= starts and time.time() < deadline:
            time.sleep(0.5)
        self.log("fault: beat restarted")

    def _crash_redis(self, record: FaultRecord) -> None:
        redis = self.stack.redis
        redis.process.kill()  # no persistence: the broker's queues and the cache are lost
        redis.process.wait(10)
        redis.process = None
        self._down(record, REDIS_DOWN_S, redis.start)

    def _restart_redis(self, record: FaultRecord) -> None:
        self.stack.redis.stop()
        self._down(record, REDIS_DOWN_S, self.stack.redis.start)

    def _restart_postgres(self, record: FaultRecord) -> None:
        self.postgres.stop()
        self._down(record, POSTGRES_DOWN_S, self.postgres.start)

    def _down(self, record: FaultRecord, seconds: float, start: Callable[[], object]) -> None:
        began = time.time()
        time.sleep(seconds)
        start()
        record.down_s = round(time.time() - began, 1)

    def restore(self) -> None:
        """Everything back up for the quiet drain, whatever the schedule reached."""
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=300)
        for receiver in self.receivers.values():
            if receiver.answers.status != 200 or receiver.answers.delay:
                receiver.behave(at=self._now())
        if self.stack.redis.process is None:
            self.stack.redis.start()
        if self.beat is None:
            self._restart_beat(None)

    # --- watching the healing ---

    def _probe(self, record: FaultRecord, struck: float, _inflight: list[str]) -> None:
        client = self.new_client()
        while time.time() - struck < HEAL_GIVE_UP_S:
            record.probes += 1
            body = {"query": f"probe after {record.fault} {uuid.uuid4().hex[:8]}", "pipeline": "dense", "top_k": 3}
            path = f"/api/v1/collections/{self.probe_collection}/search"
            job = self.ledger.submit(client, "search", self.probe_collection, path, json=body)
            if job is not None:
                job.seen_final = client.wait_final(job.id, PROBE_TIMEOUT_S)
                if job.seen_final and job.seen_final["status"] == "succeeded":
                    record.heal_s = round(time.time() - struck, 1)
                    return
            time.sleep(1.0)

    def _follow(self, record: FaultRecord, struck: float, inflight: list[str]) -> None:
        client, waiting = self.new_client(), set(inflight)
        while waiting and time.time() - struck < HEAL_GIVE_UP_S:
            for job_id in list(waiting):
                answer = client.send("GET", f"/api/v1/jobs/{job_id}")
                if answer is not None and answer.status_code == 200 and answer.json()["status"] in TERMINAL:
                    waiting.discard(job_id)
            if waiting:
                time.sleep(2.0)
        record.inflight_not_final = sorted(waiting)
        if not waiting:
            record.inflight_final_s = round(time.time() - struck, 1)

    def wait_for_watches(self, timeout: float) -> None:
        deadline = time.time() + timeout
        for watch in self.watches:
            watch.join(timeout=max(0.0, deadline - time.time()))


def jobs_in_flight(client: RecordingClient, pages: int = 10) -> list[str]:
    """The ids of the jobs queued or running now (up to `pages` pages of 100 each)."""
    ids: list[str] = []
    for status in ("queued", "running"):
        cursor = None
        for _page in range(pages):
            query = f"/api/v1/jobs?status={status}&limit=100" + (f"&cursor={cursor}" if cursor else "")
            answer = client.send("GET", query)
            if answer is None or answer.status_code != 200:
                break
            page = answer.json()
            ids += [job["id"] for job in page["items"]]
            if not (cursor := page.get("next_cursor")):
                break
    return ids
