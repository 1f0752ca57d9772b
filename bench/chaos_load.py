"""The chaos run's client threads: uploads of real files and JSON documents,
searches of every pipeline (single and batch), and submits cancelled at
once. Each thread paces itself and waits for its job before the next, so
the load stays moderate on a shared 2-core machine; every answer is
counted and every accepted job goes in the ledger. Beside them, two naive
clients on a free-tier key of their own: one polls a job every 10 ms, one
submits searches in a tight loop; both ignore every hint and refusal."""

from __future__ import annotations

import itertools
import random
import threading
from collections import Counter
from dataclasses import dataclass, field

from bench.chaos_ledger import (
    Corpus,
    Document,
    Ledger,
    RecordingClient,
    Submitted,
    Tally,
    make_document,
    upload_request,
)

FILE_KINDS = ("pdf", "docx", "txt", "md")
UPLOAD_TIMEOUT_S = 300.0
SEARCH_TIMEOUT_S = 120.0
# Shares of the work: how often an upload is JSON, re-sends an earlier
# document unchanged (it must be skipped as a duplicate), or names a
# callback_url; how often a search is a batch.
JSON_UPLOADS, REPEATED_UPLOADS, CALLBACKS, BATCH_SEARCHES = 0.3, 0.12, 0.3, 0.2


@dataclass
class LoadContext:
    """What the client threads share."""

    new_client: object  # () -> RecordingClient
    ledger: Ledger
    tally: Tally
    corpus: Corpus
    static: list[str]  # collections filled before the run and never written during it
    live: list[str]  # collections the uploads go to
    pipelines: list[str]
    callback_url: object  # (path) -> URL of the receiver of per-job callbacks
    naive_client: object  # () -> RecordingClient on a free-tier key of its own
    stop: threading.Event = field(default_factory=threading.Event)
    _numbers: itertools.count = field(default_factory=lambda: itertools.count(1))

    def number(self) -> int:
        return next(self._numbers)  # itertools.count is atomic under the GIL


class LoadThread(threading.Thread):
    """One client: step() again and again, a random pause between, until stop."""

    pace: tuple[float, float] = (0.5, 1.5)

    def __init__(self, name: str, context: LoadContext, seed: int) -> None:
        super().__init__(name=name, daemon=True)
        self.context = context
        self.rng = random.Random(seed)
        self.client: RecordingClient = context.new_client()
        self.steps = 0

    def run(self) -> None:
        while not self.context.stop.is_set():
            try:
                self.step()
                self.steps += 1
            except Exception:  # noqa: BLE001 - a bug of this script is reported, the load goes on
                self.context.tally.script_error(self.name)
            self.context.stop.wait(self.rng.uniform(*self.pace))

    def step(self) -> None:
        raise NotImplementedError

    def wait(self, job, timeout: float) -> None:
        job.seen_final = self.client.wait_final(job.id, timeout, self.context.stop)


class Uploader(LoadThread):
    pace = (1.0, 3.0)

    def __init__(self, name: str, context: LoadContext, seed: int) -> None:
        super().__init__(name, context, seed)
        self.stored: dict[str, list[Document]] = {}  # documents of succeeded uploads, per collection

    def step(self) -> None:
        c, rng = self.context, self.rng
        collection = rng.choice(c.live)
        documents = self.documents(collection)
        callback = c.callback_url("/ingest") if rng.random() < CALLBACKS else None
        path = f"/api/v1/collections/{collection}/documents"
        job = c.ledger.submit(self.client, "ingest", collection, path, documents, **upload_request(documents, callback))
        if job is not None:
            self.wait(job, UPLOAD_TIMEOUT_S)
            if job.seen_final and job.seen_final["status"] == "succeeded":
                self.stored.setdefault(collection, []).extend(documents)

    def documents(self, collection: str) -> list[Document]:
        c, rng = self.context, self.rng
        if self.stored.get(collection) and rng.random() < REPEATED_UPLOADS:
            return [rng.choice(self.stored[collection])]
        number = c.number()
        if rng.random() < JSON_UPLOADS:
            return [make_document(f"j{number:05d}-{n}", "json", c.corpus.text()) for n in range(rng.randint(2, 6))]
        return [make_document(f"u{number:05d}-{n}", rng.choice(FILE_KINDS), c.corpus.text())
                for n in range(rng.randint(1, 3))]  # fmt: skip


class Searcher(LoadThread):
    pace = (0.5, 1.5)

    def step(self) -> None:
        c, rng = self.context, self.rng
        # Static collections twice as often: their searches can all be re-run on the same state.
        collection = rng.choice([*c.static, *c.static, *c.live])
        body: dict = {"pipeline": rng.choice(c.pipelines), "top_k": rng.choice((5, 10))}
        if rng.random() < BATCH_SEARCHES:
            kind, path = "search_batch", f"/api/v1/collections/{collection}/search/batch"
            body["queries"] = rng.sample(c.corpus.queries, rng.randint(2, 5))
        else:
            kind, path = "search", f"/api/v1/collections/{collection}/search"
            body["query"] = rng.choice(c.corpus.queries)
        if rng.random() < CALLBACKS:
            body["callback_url"] = c.callback_url("/search")
        job = c.ledger.submit(self.client, kind, collection, path, json=body)
        if job is not None:
            self.wait(job, SEARCH_TIMEOUT_S)


class Canceller(LoadThread):
    """Submits an ingest or a search and cancels it within a second: queued
    ones are cancelled at once, running ones at their next checkpoint, and
    finished ones answer 409."""

    pace = (4.0, 8.0)

    def step(self) -> None:
        c, rng = self.context, self.rng
        collection = rng.choice(c.live)
        if rng.random() < 0.6:
            number = c.number()
            documents = [
                make_document(f"c{number:05d}-{n}", "json", c.corpus.text()) for n in range(rng.randint(6, 12))
            ]
            path = f"/api/v1/collections/{collection}/documents"
            job = c.ledger.submit(self.client, "ingest", collection, path, documents, **upload_request(documents, None))
        else:
            # An uncommon top_k, so the result cache rarely answers it before the cancel.
            body = {"query": rng.choice(c.corpus.queries), "top_k": rng.randint(11, 40),
                    "pipeline": rng.choice(c.pipelines)}  # fmt: skip
            job = c.ledger.submit(
                self.client, "search", collection, f"/api/v1/collections/{collection}/search", json=body
            )
        if job is None:
            return
        c.stop.wait(rng.uniform(0.0, 1.0))
        answer = self.client.send("POST", f"/api/v1/jobs/{job.id}/cancel")
        job.cancel_status = answer.status_code if answer is not None else 0  # 0: no answer
        self.wait(job, UPLOAD_TIMEOUT_S)


class NaiveClient(LoadThread):
    """A client that ignores Retry-After and poll hints; counts what it is answered."""

    pace = (0.01, 0.01)

    def __init__(self, name: str, context: LoadContext, seed: int) -> None:
        super().__init__(name, context, seed)
        self.client = context.naive_client()
        self.answers: Counter[str] = Counter()

    def search(self) -> Submitted | None:
        c = self.context
        body = {"query": self.rng.choice(c.corpus.queries), "top_k": 5}
        collection = self.rng.choice(c.live)
        job = c.ledger.submit(self.client, "search", collection, f"/api/v1/collections/{collection}/search", json=body)
        self.answers["202" if job is not None else "refused"] += 1
        return job


class NaivePoller(NaiveClient):
    """One search, then its job polled every 10 ms, unconditionally, for the rest of the run."""

    job_id: str | None = None

    def step(self) -> None:
        if self.job_id is None:
            job = self.search()
            self.job_id = job.id if job is not None else None
            return
        response = self.client.send("GET", f"/api/v1/jobs/{self.job_id}")
        self.answers[str(response.status_code) if response is not None else "no answer"] += 1


class QuotaBuster(NaiveClient):
    """Searches submitted back to back, never waited for."""

    pace = (0.0, 0.0)

    def step(self) -> None:
        self.search()


def start_load(context: LoadContext, seed: int) -> list[LoadThread]:
    threads = [Uploader("uploader", context, seed), Searcher("searcher-1", context, seed + 1),
               Searcher("searcher-2", context, seed + 2), Canceller("canceller", context, seed + 3),
               NaivePoller("naive-poller", context, seed + 4), QuotaBuster("quota-buster", context, seed + 5)]  # fmt: skip
    for thread in threads:
        thread.start()
    return threads
