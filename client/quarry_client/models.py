"""What the service answers, as typed objects.

Plain dataclasses rather than pydantic: the service already validates what it
sends, so the client only needs names and types for a reader and an editor,
and the package stays a pure-Python dependency of httpx and little else.
Every object keeps the JSON it was read from in `raw`, so fields the service
adds later are never lost to a client that is older than they are."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar, TypeVar

if TYPE_CHECKING:
    from quarry_client.resources import Jobs

FINAL_STATUSES = frozenset({"succeeded", "failed", "cancelled"})

T = TypeVar("T", bound="Model")


@dataclass
class Model:
    raw: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)
    # Fields that hold other models (an object, or a list of them), by name.
    _nested: ClassVar[dict[str, type[Model]]] = {}

    @classmethod
    def from_json(cls: type[T], data: dict[str, Any]) -> T:
        """The object for `data`, taking the fields this class names (the
        rest stays in `raw`)."""
        names = {f.name for f in dataclasses.fields(cls) if f.init and f.name != "raw"}
        values = {k: v for k, v in data.items() if k in names}
        for name, kind in cls._nested.items():
            value = values.pop(name, None)
            if isinstance(value, list):
                values[name] = [kind.from_json(item) for item in value]
            elif isinstance(value, dict):
                values[name] = kind.from_json(value)
        return cls(raw=data, **values)


@dataclass
class Hit(Model):
    document_id: str = ""
    chunk_id: str | int | None = None
    score: float = 0.0
    text: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)


@dataclass
class SearchResult(Model):
    """A search job's result: its hits, best first."""

    _nested: ClassVar[dict[str, type[Model]]] = {"hits": Hit}

    hits: list[Hit] = field(default_factory=list)
    pipeline: str = ""
    took_ms: float | None = None
    index_generation: int | None = None
    cached: bool = False


@dataclass
class QueryResult(Model):
    """One query of a batch search, with its hits."""

    _nested: ClassVar[dict[str, type[Model]]] = {"hits": Hit}

    query: str = ""
    hits: list[Hit] = field(default_factory=list)


@dataclass
class BatchSearchResult(Model):
    _nested: ClassVar[dict[str, type[Model]]] = {"results": QueryResult}

    results: list[QueryResult] = field(default_factory=list)
    pipeline: str = ""


@dataclass
class Failure(Model):
    """A file or document an ingest could not take, and why."""

    source: str = ""
    error: str = ""


@dataclass
class IngestResult(Model):
    _nested: ClassVar[dict[str, type[Model]]] = {"failed": Failure}

    documents: int = 0
    chunks: int = 0
    skipped_duplicates: int = 0
    failed: list[Failure] = field(default_factory=list)


_RESULTS: dict[str, type[Model]] = {
    "search": SearchResult,
    "search_batch": BatchSearchResult,
    "ingest": IngestResult,
}


@dataclass
class Progress(Model):
    processed: int = 0
    total: int = 0
    percent: float = 0.0


@dataclass
class Job(Model):
    """A job as last read. `result` is typed by the job's `type`
    (SearchResult, BatchSearchResult, IngestResult; a dict for the others).
    `wait()` polls it until it is final."""

    _nested: ClassVar[dict[str, type[Model]]] = {"progress": Progress}

    id: str = ""
    type: str = ""
    status: str = ""
    collection: str | None = None
    progress: Progress = field(default_factory=Progress)
    result: Any = None
    error: dict[str, str] | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    poll_after_ms: int | None = None
    # The ETag of the answer this job was read from (for If-None-Match).
    etag: str | None = field(default=None, compare=False)
    replayed: bool = field(default=False, compare=False)
    _jobs: Jobs | None = field(default=None, repr=False, compare=False)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Job:
        job = super().from_json(data)
        kind = _RESULTS.get(job.type)
        if job.result is not None and kind is not None:
            job.result = kind.from_json(job.result)
        return job

    @property
    def final(self) -> bool:
        return self.status in FINAL_STATUSES

    def wait(self, timeout: float | None = None) -> Any:
        """Poll until final: the succeeded job (JobFailed, JobCancelled or
        WaitTimeout otherwise). On an AsyncQuarry's job, a coroutine."""
        if self._jobs is None:
            raise RuntimeError("this job was not read through a client")
        return self._jobs.wait(self, timeout=timeout)

    def refresh(self) -> Any:
        """The job as it is now (a coroutine on an AsyncQuarry's job)."""
        if self._jobs is None:
            raise RuntimeError("this job was not read through a client")
        return self._jobs.get(self.id)


@dataclass
class Collection(Model):
    name: str = ""
    description: str | None = None
    index_type: str = ""
    documents: int = 0
    chunks: int = 0
    generation: int = 0
    created_at: str | None = None


@dataclass
class Document(Model):
    id: str = ""
    metadata: dict[str, Any] = field(default_factory=dict)
    chunks: int = 0
    content_hash: str = ""
    status: str = ""
    source: str | None = None
    created_at: str | None = None


@dataclass
class Webhook(Model):
    id: str = ""
    url: str = ""
    events: list[str] = field(default_factory=list)
    description: str | None = None
    active: bool = True
    disabled_reason: str | None = None
    # Only in the answers that create the endpoint or rotate its secret.
    secret: str | None = None
    created_at: str | None = None


@dataclass
class Delivery(Model):
    id: str = ""
    event_id: str = ""
    event: str = ""
    job_id: str | None = None
    state: str = ""
    attempts: int = 0
    last_status_code: int | None = None
    last_error: str | None = None
    next_attempt_at: str | None = None


@dataclass
class ApiKey(Model):
    id: str = ""
    name: str = ""
    prefix: str = ""
    scopes: list[str] = field(default_factory=list)
    tier: str = ""
    created_at: str | None = None
    last_used_at: str | None = None
    expires_at: str | None = None
    revoked: bool = False
    revoked_at: str | None = None
    # The secret itself: only in the answers that create or rotate a key.
    key: str | None = None


@dataclass
class Pipeline(Model):
    name: str = ""
    status: str = ""
    description: str = ""
    capabilities: list[str] = field(default_factory=list)
    default: bool = False
    reason: str | None = None
    stats: dict[str, Any] = field(default_factory=dict)


@dataclass
class Health(Model):
    status: str = ""
    version: str | None = None
    uptime_s: float | None = None
    components: dict[str, Any] = field(default_factory=dict)
