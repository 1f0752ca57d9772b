"""What the chaos run's clients send and remember: an HTTP client that
records every answer, the ledger of what the service accepted (jobs and
documents), the texts and queries, and the files uploaded (PDF, DOCX, TXT,
MD, built in memory)."""

from __future__ import annotations

import io
import json
import re
import threading
import time
import traceback
import uuid
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import docx
import requests

from app.services.jobs import TERMINAL
from devstack.client import Client
from devstack.pdf import make_pdf

# Statuses a submit may answer with that say "not now": counted, and the thread moves on.
REFUSALS = (429, 503)
# A connection error on a submit leaves it unknown whether the job exists: the
# same request is sent again under the same Idempotency-Key this many times.
SUBMIT_ATTEMPTS = 6
LONGEST_POLL_WAIT_S = 5.0
# Route shapes for the answer counts: ids and names replaced by placeholders.
ROUTE_PARTS = ((re.compile(r"/jobs/[^/?]+"), "/jobs/{id}"), (re.compile(r"/collections/[^/?]+"), "/collections/{name}"),
               (re.compile(r"/webhooks/(?!secret)[^/?]+"), "/webhooks/{id}"), (re.compile(r"\?.*"), ""))  # fmt: skip


class Tally:
    """Every answer the run's clients got, by route and status; the
    connection errors; and the evidence of each 500 (or other 5xx but 503)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.by_route: Counter[tuple[str, str]] = Counter()
        self.connection_errors: Counter[str] = Counter()
        self.server_errors: list[dict] = []
        self.script_errors: list[str] = []  # exceptions in this run's own threads

    def answer(self, method: str, path: str, request_id: str, response: requests.Response, sent: dict) -> None:
        route = f"{method} {route_of(path)}"
        with self._lock:
            self.by_route[(route, str(response.status_code))] += 1
            if response.status_code >= 500 and response.status_code != 503:
                self.server_errors.append({
                    "at": time.time(), "method": method, "path": path, "status": response.status_code,
                    "request_id": response.headers.get("X-Request-ID", request_id),
                    "request": excerpt(sent), "response": response.text[:2000],
                })  # fmt: skip

    def connection_error(self, method: str, path: str, exc: Exception) -> None:
        with self._lock:
            self.connection_errors[f"{method} {route_of(path)}: {type(exc).__name__}"] += 1

    def script_error(self, where: str) -> None:
        with self._lock:
            self.script_errors.append(f"{where}: {traceback.format_exc(limit=4)}")

    def statuses(self) -> Counter[str]:
        with self._lock:
            totals: Counter[str] = Counter()
            for (_route, status), n in self.by_route.items():
                totals[status] += n
            return totals


def route_of(path: str) -> str:
    for pattern, placeholder in ROUTE_PARTS:
        path = pattern.sub(placeholder, path)
    return path


def excerpt(sent: dict) -> str:
    """What a request carried, short: its JSON body, or its form fields and file names."""
    if sent.get("json") is not None:
        return json.dumps(sent["json"])[:1000]
    files = [part[1][0] for part in sent.get("files") or []]
    return json.dumps({"form": sent.get("data"), "files": files})[:1000]


class RecordingClient(Client):
    """The devstack client, with every request's answer (or connection error)
    counted in the tally, and a request id of its own on each request so
    that the service's log lines of any answer can be found."""

    def __init__(self, base_url: str, key: str, tally: Tally) -> None:
        super().__init__(base_url, key)
        self.tally = tally

    def send(self, method: str, path: str, timeout: float = 30, **kwargs) -> requests.Response | None:
        request_id = f"chaos-{uuid.uuid4().hex[:16]}"
        headers = {"X-Request-ID": request_id, **kwargs.pop("headers", {})}
        try:
            response = self.http.request(method, self.url(path), headers=headers, timeout=timeout, **kwargs)
        except requests.RequestException as exc:
            self.tally.connection_error(method, path, exc)
            return None
        self.tally.answer(method, path, request_id, response, kwargs)
        return response

    def get(self, path: str, **kwargs) -> requests.Response:
        response = self.send("GET", path, **kwargs)
        if response is None:
            raise requests.ConnectionError(f"GET {path} failed")
        return response

    def wait_final(self, job_id: str, timeout: float, stop: threading.Event | None = None) -> dict | None:
        """Poll a job as its hints say (conditionally, with its ETag) until it
        is final; None at the deadline or when `stop` is set. Refusals and
        connection errors while a dependency is down are waited out."""
        deadline, etag, job, wait = time.monotonic() + timeout, None, None, 0.2
        while time.monotonic() < deadline and not (stop is not None and stop.is_set()):
            response = self.send("GET", f"/api/v1/jobs/{job_id}", headers={"If-None-Match": etag} if etag else {})
            if response is not None and response.status_code == 200:
                job, etag = response.json(), response.headers.get("ETag")
                if job["status"] in TERMINAL:
                    return job
                wait = (job.get("poll_after_ms") or 200) / 1000
            elif response is not None and response.status_code in REFUSALS:
                wait = float(response.headers.get("Retry-After", 1))
            elif response is None or response.status_code != 304:
                wait = 1.0
            time.sleep(min(max(wait, 0.1), LONGEST_POLL_WAIT_S))
        return None


@dataclass
class Document:
    """One uploaded document: its id in its collection, and its content as
    sent (a file's bytes, or a JSON document's text)."""

    id: str
    kind: str  # "pdf", "docx", "txt", "md" or "json"
    text: str  # the source text it was made from
    data: bytes | None = None  # a file's bytes

    @property
    def filename(self) -> str | None:
        return self.id if self.kind != "json" else None


@dataclass
class Submitted:
    """A job the service accepted (202, or 200 when a retried submit was replayed)."""

    id: str
    kind: str  # "ingest", "search" or "search_batch"
    collection: str
    at: float  # time.time() of the answer
    path: str
    body: dict | None = None  # a search's JSON body
    documents: list[str] = field(default_factory=list)  # an ingest's document ids
    callback: bool = False
    cancel_status: int | None = None  # the answer to POST /cancel when one was sent (0: none came)
    seen_final: dict | None = None  # the job as its client saw it final
    replayed: bool = False


class Ledger:
    """What the run asked of the service and what it answered, for the checks."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.jobs: dict[str, Submitted] = {}
        self.documents: dict[str, dict[str, Document]] = {}  # collection -> id -> document
        self.refused: Counter[str] = Counter()  # "kind status" -> submits refused
        self.refused_documents: dict[str, set[str]] = {}  # documents only ever sent in refused submits
        self.unknown_documents: dict[str, set[str]] = {}  # sent in submits whose answer never came
        self.other_answers: Counter[str] = Counter()

    def accepted(self, job: Submitted, documents: list[Document]) -> None:
        with self._lock:
            self.jobs[job.id] = job
            for doc in documents:
                self.documents.setdefault(job.collection, {})[doc.id] = doc

    def not_accepted(self, kind: str, collection: str, answer: str, documents: list[Document]) -> None:
        with self._lock:
            self.refused[f"{kind} {answer}"] += 1
            into = self.unknown_documents if answer == "no answer" else self.refused_documents
            into.setdefault(collection, set()).update(doc.id for doc in documents)
            if answer == "no answer":
                for doc in documents:
                    self.documents.setdefault(collection, {}).setdefault(doc.id, doc)

    def submit(self, client: RecordingClient, kind: str, collection: str, path: str, documents: list[Document] = (),
               **request) -> Submitted | None:  # fmt: skip
        """POST a submit, sent again under the same Idempotency-Key after a
        connection error (the job may exist). Refusals are final for it."""
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        for _attempt in range(SUBMIT_ATTEMPTS):
            response = client.send("POST", path, headers=headers, timeout=60, **request)
            if response is None:
                time.sleep(1)
                continue
            if response.status_code in (200, 202):
                body = request.get("json") or {}
                job = Submitted(response.json()["id"], kind, collection, time.time(), path,
                                body=body if kind != "ingest" else None, documents=[d.id for d in documents],
                                callback="callback_url" in body or "callback_url" in (request.get("data") or {}),
                                replayed=response.status_code == 200)  # fmt: skip
                self.accepted(job, list(documents))
                return job
            answer = str(response.status_code)
            if response.status_code not in REFUSALS:
                with self._lock:
                    self.other_answers[f"{kind} {answer}: {response.text[:200]}"] += 1
            self.not_accepted(kind, collection, answer, list(documents))
            return None
        self.not_accepted(kind, collection, "no answer", list(documents))
        return None


class Corpus:
    """Texts to upload (SciFact abstracts, each used once) and queries (a small
    pool, so searches repeat and meet the result cache)."""

    def __init__(self, dataset: Path, queries: int) -> None:
        self._lock = threading.Lock()
        with (dataset / "corpus.jsonl").open(encoding="utf-8") as lines:
            self._texts = [self._ascii(f"{d['title']}. {d['text']}") for line in lines if (d := json.loads(line))]
        self._next = 0
        with (dataset / "queries.jsonl").open(encoding="utf-8") as lines:
            self.queries = [json.loads(line)["text"] for line in lines][:queries]

    @staticmethod
    def _ascii(text: str) -> str:
        # The PDFs this run writes use a standard font, which has no glyphs beyond Latin-1.
        return text.encode("ascii", "replace").decode().replace("?", " ")

    def text(self) -> str:
        with self._lock:
            text = self._texts[self._next % len(self._texts)]
            self._next += 1
        return text


def make_docx(text: str) -> bytes:
    document = docx.Document()
    sentences = text.split(". ")
    for start in range(0, len(sentences), 3):  # a paragraph every three sentences
        document.add_paragraph(". ".join(sentences[start : start + 3]))
    buffer = io.BytesIO()
    document.save(buffer)
    return buffer.getvalue()


def make_document(doc_id: str, kind: str, text: str) -> Document:
    if kind == "json":
        return Document(doc_id, kind, text)
    data = {"pdf": make_pdf, "docx": make_docx}.get(kind, lambda t: t.encode())(text)
    if kind == "md":
        data = b"# " + data
    return Document(f"{doc_id}.{kind}", kind, text, data)


MIME = {"pdf": "application/pdf", "txt": "text/plain", "md": "text/markdown",
        "docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document"}  # fmt: skip


def upload_request(documents: list[Document], callback_url: str | None) -> dict:
    """The keyword arguments of an upload: JSON documents, or multipart files."""
    if documents[0].kind == "json":
        body: dict = {"documents": [{"id": d.id, "text": d.text, "metadata": {"source": "chaos"}} for d in documents]}
        return {"json": body | ({"callback_url": callback_url} if callback_url else {})}
    files = [("files", (d.id, d.data, MIME[d.kind])) for d in documents]
    data = {"metadata": json.dumps({"source": "chaos"})} | ({"callback_url": callback_url} if callback_url else {})
    return {"files": files, "data": data}
