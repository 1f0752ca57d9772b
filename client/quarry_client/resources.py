"""Every route of the API as a method that builds a Call.

The same resource objects serve Quarry and AsyncQuarry: a method returns
whatever the client's `_send` returns, the answer itself on Quarry and a
coroutine of it on AsyncQuarry. So a method never touches the answer after
sending; reading it is the Call's `parse`."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypedDict, TypeVar, Unpack
from urllib.parse import quote

import httpx

from quarry_client.calls import Call, Upload, submit_headers
from quarry_client.errors import retry_after
from quarry_client.files import files_under, is_supported
from quarry_client.models import (
    ApiKey,
    Collection,
    Delivery,
    Document,
    Health,
    Job,
    Model,
    Pipeline,
    Webhook,
)

if TYPE_CHECKING:
    from quarry_client.clients import BaseClient

API = "/api/v1"
M = TypeVar("M", bound=Model)


def _segment(value: str) -> str:
    return quote(str(value), safe="")


def _json(response: httpx.Response) -> Any:
    return response.json()


def _nothing(response: httpx.Response) -> None:
    return None


def _listed(values: Sequence[str] | None) -> list[str] | None:
    return list(values) if values is not None else None


def _options(**values: Any) -> dict[str, Any]:
    """The given options, leaving out those not set (the service's defaults apply)."""
    return {k: v for k, v in values.items() if v is not None}


class Resource:
    def __init__(self, client: BaseClient) -> None:
        self._client = client

    def _send(self, call: Call) -> Any:
        return self._client._send(call)

    def _read(self, path: str, model: type[M], **params: Any) -> Any:
        return self._send(
            Call("GET", path, lambda r: model.from_json(r.json()), params=params or None, repeatable=True)
        )

    def _page(self, path: str, item: Callable[[dict[str, Any]], Any], **params: Any) -> Any:
        """Every item of a paginated list, page after page, as an iterator
        (an async iterator on AsyncQuarry); `item` reads each one."""
        return self._client._paginate(path, _options(**params), item)

    def _job(self, response: httpx.Response) -> Job:
        return self._client.jobs._from_response(response)

    def _submit(self, method: str, path: str, idempotency_key: str | None, **body: Any) -> Any:
        """Send a submit: a Job, the same one on every retry of this call."""
        return self._send(
            Call(method, path, self._job, headers=submit_headers(idempotency_key), repeatable=True, **body)
        )


class Jobs(Resource):
    def _from_response(self, response: httpx.Response) -> Job:
        job = self._bound(response.json())
        job.etag = response.headers.get("ETag")
        job.replayed = response.headers.get("Idempotent-Replayed") == "true"
        return job

    def _bound(self, data: dict[str, Any]) -> Job:
        """A job that can wait() and refresh() through this client."""
        job = Job.from_json(data)
        job._jobs = self
        return job

    def get(self, job_id: str) -> Any:
        return self._send(Call("GET", f"{API}/jobs/{_segment(job_id)}", self._from_response, repeatable=True))

    def poll(self, job: Job) -> Call:
        """The conditional GET of a wait: a 304 keeps `job`; 429 and 503 are
        left to the wait, which sleeps their Retry-After within its bound."""

        def parse(response: httpx.Response) -> Job:
            if response.status_code != 304:
                return self._from_response(response)
            # Unchanged, but the hint moves on: the answer's Retry-After.
            hint = retry_after(response)
            return job if hint is None else dataclasses.replace(job, poll_after_ms=int(hint * 1000))

        return Call(
            "GET",
            f"{API}/jobs/{_segment(job.id)}",
            parse,
            headers={"If-None-Match": job.etag} if job.etag else {},
            accept=(304,),
            repeatable=True,
            retry_refusals=False,
        )

    def list(self, *, status: str | None = None, type: str | None = None, collection: str | None = None) -> Any:
        """Jobs, newest first, every page."""
        return self._page(f"{API}/jobs", self._bound, status=status, type=type, collection=collection)

    def cancel(self, job_id: str) -> Any:
        return self._send(Call("POST", f"{API}/jobs/{_segment(job_id)}/cancel", self._from_response))

    def wait(self, job: Job | str, timeout: float | None = None) -> Any:
        """The job once it has succeeded; JobFailed, JobCancelled, or
        WaitTimeout at the bound (the client's wait_timeout by default)."""
        return self._client._wait(job, timeout)

    def wait_all(
        self,
        jobs: Iterable[Job | str],
        timeout: float | None = None,
        on_update: Callable[[Sequence[Job]], None] | None = None,
    ) -> Any:
        """Every job once all are final, in the order given, whatever their
        status (check `job.status`); WaitTimeout if one is not final by the
        bound. One loop polls them all, each when its own hint says;
        `on_update(jobs)` is called after each poll (for a progress bar)."""
        return self._client._wait_all(list(jobs), timeout, on_update)


def _readable_files(path: Path) -> list[Path]:
    return [f for f in files_under([path]) if is_supported(f)] if path.is_dir() else [path]


class Collections(Resource):
    def create(self, name: str, *, description: str | None = None, index_type: str | None = None) -> Any:
        body = _options(name=name, description=description, index_type=index_type)
        return self._send(Call("POST", f"{API}/collections", lambda r: Collection.from_json(r.json()), json=body))

    def list(self) -> Any:
        return self._page(f"{API}/collections", Collection.from_json)

    def get(self, name: str) -> Any:
        return self._read(f"{API}/collections/{_segment(name)}", Collection)

    def delete(self, name: str, *, idempotency_key: str | None = None) -> Any:
        """A job that deletes the collection, its documents and its index."""
        return self._submit("DELETE", f"{API}/collections/{_segment(name)}", idempotency_key)


class Documents(Resource):
    def add(
        self,
        collection: str,
        documents: Sequence[Mapping[str, Any]],
        *,
        callback_url: str | None = None,
        callback_events: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """An ingest job for documents given as JSON ({"text", "id"?, "metadata"?})."""
        body = _options(
            documents=[dict(d) for d in documents], callback_url=callback_url, callback_events=_listed(callback_events)
        )
        return self._submit("POST", self._path(collection), idempotency_key, json=body)

    def upload(
        self,
        collection: str,
        files: str | Path | Iterable[str | Path | tuple[str, bytes]],
        *,
        metadata: Mapping[str, Any] | None = None,
        callback_url: str | None = None,
        callback_events: Sequence[str] | None = None,
        idempotency_key: str | None = None,
    ) -> Any:
        """An ingest job for files: paths (a folder stands for the files in
        it that the service reads, recursively), or (name, bytes) pairs."""
        uploads: list[Upload] = []
        for item in [files] if isinstance(files, str | Path) else files:
            if isinstance(item, tuple):
                uploads.append(Upload(*item))
            else:
                uploads.extend(Upload(path.name, path) for path in _readable_files(Path(item)))
        form = _options(
            metadata=json.dumps(dict(metadata)) if metadata else None,
            callback_url=callback_url,
            callback_events=_listed(callback_events),
        )
        return self._submit("POST", self._path(collection), idempotency_key, uploads=tuple(uploads), data=form or None)

    def list(self, collection: str, *, metadata: Mapping[str, Any] | None = None) -> Any:
        """The collection's documents; `metadata` keeps those whose metadata
        holds every given key and value."""
        return self._page(
            self._path(collection), Document.from_json, metadata=json.dumps(dict(metadata)) if metadata else None
        )

    def get(self, collection: str, document_id: str) -> Any:
        return self._read(f"{self._path(collection)}/{_segment(document_id)}", Document)

    def delete(self, collection: str, document_id: str, *, idempotency_key: str | None = None) -> Any:
        """A job that removes the document from the index and the database."""
        return self._submit("DELETE", f"{self._path(collection)}/{_segment(document_id)}", idempotency_key)

    @staticmethod
    def _path(collection: str) -> str:
        return f"{API}/collections/{_segment(collection)}/documents"


class SearchOptions(TypedDict, total=False):
    """What a search and a batch search take beside their query or queries
    (None, like leaving one out, takes the service's default)."""

    top_k: int | None
    pipeline: str | None
    filters: Mapping[str, Any] | None
    collapse: str | None
    callback_url: str | None
    callback_events: Sequence[str] | None
    idempotency_key: str | None


class Search(Resource):
    def __call__(self, collection: str, query: str, **options: Unpack[SearchOptions]) -> Any:
        """A search job (its result: SearchResult)."""
        return self._search(f"{API}/collections/{_segment(collection)}/search", {"query": query}, options)

    def batch(self, collection: str, queries: Sequence[str], **options: Unpack[SearchOptions]) -> Any:
        """One job for up to 100 queries (its result: BatchSearchResult)."""
        path = f"{API}/collections/{_segment(collection)}/search/batch"
        return self._search(path, {"queries": list(queries)}, options)

    def _search(self, path: str, body: dict[str, Any], options: SearchOptions) -> Any:
        given: dict[str, Any] = {**options, "callback_events": _listed(options.get("callback_events"))}
        key = given.pop("idempotency_key", None)
        return self._submit("POST", path, key, json={**body, **_options(**given)})


class Webhooks(Resource):
    def create(self, url: str, events: Sequence[str] = ("*",), *, description: str | None = None) -> Any:
        """A new endpoint; its `secret` is in this answer only."""
        body = _options(url=url, events=list(events), description=description)
        return self._send(Call("POST", f"{API}/webhooks", self._webhook, json=body))

    def list(self) -> Any:
        return self._page(f"{API}/webhooks", Webhook.from_json)

    def get(self, webhook_id: str) -> Any:
        return self._read(self._path(webhook_id), Webhook)

    def update(
        self,
        webhook_id: str,
        *,
        url: str | None = None,
        events: Sequence[str] | None = None,
        active: bool | None = None,
        description: str | None = None,
    ) -> Any:
        body = _options(
            url=url, events=list(events) if events is not None else None, active=active, description=description
        )
        return self._send(Call("PATCH", self._path(webhook_id), self._webhook, json=body, repeatable=True))

    def delete(self, webhook_id: str) -> Any:
        return self._send(Call("DELETE", self._path(webhook_id), _nothing, repeatable=True, accept_on_retry=(404,)))

    def rotate_secret(self, webhook_id: str) -> Any:
        return self._send(Call("POST", f"{self._path(webhook_id)}/rotate-secret", self._webhook))

    def test(self, webhook_id: str) -> Any:
        """Sends a `ping` event to the endpoint."""
        return self._send(Call("POST", f"{self._path(webhook_id)}/test", _json))

    def deliveries(self, webhook_id: str) -> Any:
        return self._page(f"{self._path(webhook_id)}/deliveries", Delivery.from_json)

    def redeliver(self, webhook_id: str, delivery_id: str) -> Any:
        path = f"{self._path(webhook_id)}/deliveries/{_segment(delivery_id)}/redeliver"
        return self._send(Call("POST", path, _json))

    def secret(self) -> Any:
        """The tenant's secret that signs per-job callback_url deliveries."""
        return self._send(Call("GET", f"{API}/webhooks/secret", lambda r: r.json()["secret"], repeatable=True))

    @staticmethod
    def _webhook(response: httpx.Response) -> Webhook:
        return Webhook.from_json(response.json())

    @staticmethod
    def _path(webhook_id: str) -> str:
        return f"{API}/webhooks/{_segment(webhook_id)}"


class Keys(Resource):
    def create(
        self,
        name: str,
        scopes: Sequence[str] = ("read", "write"),
        *,
        tier: str | None = None,
        expires_at: str | None = None,
    ) -> Any:
        """A new key; the secret (`key`) is in this answer only."""
        body = _options(name=name, scopes=list(scopes), tier=tier, expires_at=expires_at)
        return self._send(Call("POST", f"{API}/keys", lambda r: ApiKey.from_json(r.json()), json=body))

    def list(self) -> Any:
        return self._page(f"{API}/keys", ApiKey.from_json)

    def revoke(self, key_id: str) -> Any:
        return self._send(
            Call("DELETE", f"{API}/keys/{_segment(key_id)}", _nothing, repeatable=True, accept_on_retry=(404,))
        )

    def rotate(self, key_id: str) -> Any:
        """A new key; the old one works on for the grace period."""
        path = f"{API}/keys/{_segment(key_id)}/rotate"
        return self._send(Call("POST", path, lambda r: ApiKey.from_json(r.json())))


class Pipelines(Resource):
    def list(self) -> Any:
        def parse(response: httpx.Response) -> list[Pipeline]:
            return [Pipeline.from_json(p) for p in response.json()]

        return self._send(Call("GET", f"{API}/pipelines", parse, repeatable=True))

    def get(self, name: str) -> Any:
        return self._read(f"{API}/pipelines/{_segment(name)}", Pipeline)


class Service(Resource):
    def health(self) -> Any:
        """The service's health (an unhealthy one answers too, with 503)."""
        call = Call(
            "GET", "/health", lambda r: Health.from_json(r.json()), accept=(503,), repeatable=True, retry_refusals=False
        )
        return self._send(call)
