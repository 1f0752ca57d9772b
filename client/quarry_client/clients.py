"""Quarry and AsyncQuarry: the same calls (resources.py), sent with httpx's
Client or AsyncClient. Only sending, sleeping and the loops over pages and
polls differ between the two; what to send and when to retry is shared."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any

import httpx

from quarry_client.calls import Call, RetryPolicy
from quarry_client.config import resolve
from quarry_client.errors import GatewayError, QuarryError, RetryLater, TransportError, error_from_response
from quarry_client.models import Job
from quarry_client.resources import Collections, Documents, Jobs, Keys, Pipelines, Search, Service, Webhooks
from quarry_client.waiting import PollPlan, PollSchedule, outcome

__version__ = "0.1.0"
DEFAULT_WAIT_TIMEOUT = 600.0
# What a wait rides out until its bound, polling again later: refusals
# (after their Retry-After), no answer, and a gateway's 502 or 504.
WAIT_THROUGH = (RetryLater, TransportError, GatewayError)
OnUpdate = Callable[[Sequence[Job]], None] | None


class BaseClient:
    """Configuration and the resources; `_send` and the loops are the subclasses'."""

    def __init__(
        self,
        base_url: str | None = None,
        api_key: str | None = None,
        *,
        timeout: float = 30.0,
        wait_timeout: float = DEFAULT_WAIT_TIMEOUT,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.base_url, self.api_key = resolve(base_url, api_key)
        self.timeout = timeout
        self.wait_timeout = wait_timeout
        self.retry = retry or RetryPolicy()
        self.collections = Collections(self)
        self.documents = Documents(self)
        self.search = Search(self)
        self.jobs = Jobs(self)
        self.webhooks = Webhooks(self)
        self.keys = Keys(self)
        self.pipelines = Pipelines(self)
        self.service = Service(self)

    def _http_options(self) -> dict[str, Any]:
        headers = {"User-Agent": f"quarry-client/{__version__}"}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        return {"base_url": self.base_url, "headers": headers, "timeout": self.timeout}

    def _schedule(self, timeout: float | None) -> PollSchedule:
        return PollSchedule(self.wait_timeout if timeout is None else timeout)

    def _send(self, call: Call) -> Any:
        raise NotImplementedError

    def _delay_after(
        self, call: Call, attempt: int, *, response: httpx.Response | None = None, error: Exception | None = None
    ) -> float:
        """Seconds before the next attempt of `call`, after an error answer
        or none at all; the error itself when the call is not tried again."""
        if response is None:
            delay = self.retry.after_error(call, attempt)
            if delay is None:
                raise _failed_to_connect(call, error) from error
            return delay
        delay = self.retry.after_answer(call, attempt, response)
        if delay is None:
            raise error_from_response(response)
        return delay

    def _paginate(self, path: str, params: dict[str, Any], item: Callable[[dict[str, Any]], Any]) -> Any:
        raise NotImplementedError

    def _wait(self, job: Job | str, timeout: float | None) -> Any:
        raise NotImplementedError

    def _wait_all(self, jobs: list[Job | str], timeout: float | None, on_update: OnUpdate = None) -> Any:
        raise NotImplementedError


def _page_call(path: str, params: dict[str, Any]) -> Call:
    return Call("GET", path, lambda r: r.json(), params=params, repeatable=True)


def _failed_to_connect(call: Call, exc: Exception | None) -> TransportError:
    return TransportError(f"{call.method} {call.path}: no answer ({exc.__class__.__name__}: {exc})", code="transport")


class Quarry(BaseClient):
    """The blocking client. `Quarry()` alone reads QUARRY_URL and
    QUARRY_API_KEY (or what `make run` wrote). Pass `transport=` to send
    through another httpx transport (a proxy, a test's)."""

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *, transport: Any = None, **options: Any
    ):
        super().__init__(base_url, api_key, **options)
        self._http = httpx.Client(transport=transport, **self._http_options())

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Quarry:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def _send(self, call: Call) -> Any:
        for attempt in itertools.count():
            try:
                with call.files() as files:
                    response = self._http.request(call.method, call.path, files=files, **call.request_options())
            except httpx.TransportError as exc:
                time.sleep(self._delay_after(call, attempt, error=exc))
                continue
            if call.answered(response, attempt):
                return call.parse(response)
            time.sleep(self._delay_after(call, attempt, response=response))

    def _paginate(self, path: str, params: dict[str, Any], item: Callable[[dict[str, Any]], Any]) -> Iterator[Any]:
        cursor = None
        while True:
            page = self._send(_page_call(path, {**params, "cursor": cursor} if cursor else params))
            yield from (item(data) for data in page["items"])
            if not (cursor := page.get("next_cursor")):
                return

    def _wait(self, job: Job | str, timeout: float | None) -> Job:
        return outcome(self._wait_all([job], timeout)[0])

    def _wait_all(self, jobs: list[Job | str], timeout: float | None, on_update: OnUpdate = None) -> list[Job]:
        plan = PollPlan([self.jobs.get(j) if isinstance(j, str) else j for j in jobs], self._schedule(timeout))
        while (step := plan.next()) is not None:
            index, delay = step
            time.sleep(delay)
            try:
                plan.polled(index, self._send(self.jobs.poll(plan.jobs[index])))
                if on_update:
                    on_update(plan.jobs)
            except WAIT_THROUGH as exc:
                plan.refused(index, getattr(exc, "retry_after", None))
        return plan.jobs

    def search_and_wait(self, collection: str, query: str, *, timeout: float | None = None, **options: Any) -> Any:
        """Search and wait: the SearchResult."""
        return self.search(collection, query, **options).wait(timeout).result

    def upload_and_wait(self, collection: str, files: Any, *, timeout: float | None = None, **options: Any) -> Any:
        """Upload files, wait for the ingest: its IngestResult (`failed`
        names the files it could not read)."""
        return self.documents.upload(collection, files, **options).wait(timeout).result


class AsyncQuarry(BaseClient):
    """The same calls on httpx.AsyncClient: every call is awaited, lists are
    async iterators (`async for job in q.jobs.list()`)."""

    def __init__(
        self, base_url: str | None = None, api_key: str | None = None, *, transport: Any = None, **options: Any
    ):
        super().__init__(base_url, api_key, **options)
        self._http = httpx.AsyncClient(transport=transport, **self._http_options())

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncQuarry:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()

    async def _send(self, call: Call) -> Any:
        for attempt in itertools.count():
            try:
                with call.files() as files:
                    response = await self._http.request(call.method, call.path, files=files, **call.request_options())
            except httpx.TransportError as exc:
                await asyncio.sleep(self._delay_after(call, attempt, error=exc))
                continue
            if call.answered(response, attempt):
                return call.parse(response)
            await asyncio.sleep(self._delay_after(call, attempt, response=response))

    async def _paginate(
        self, path: str, params: dict[str, Any], item: Callable[[dict[str, Any]], Any]
    ) -> AsyncIterator[Any]:
        cursor = None
        while True:
            page = await self._send(_page_call(path, {**params, "cursor": cursor} if cursor else params))
            for data in page["items"]:
                yield item(data)
            if not (cursor := page.get("next_cursor")):
                return

    async def _wait(self, job: Job | str, timeout: float | None) -> Job:
        return outcome((await self._wait_all([job], timeout))[0])

    async def _wait_all(self, jobs: list[Job | str], timeout: float | None, on_update: OnUpdate = None) -> list[Job]:
        known = [await self.jobs.get(j) if isinstance(j, str) else j for j in jobs]
        plan = PollPlan(known, self._schedule(timeout))
        while (step := plan.next()) is not None:
            index, delay = step
            await asyncio.sleep(delay)
            try:
                plan.polled(index, await self._send(self.jobs.poll(plan.jobs[index])))
                if on_update:
                    on_update(plan.jobs)
            except WAIT_THROUGH as exc:
                plan.refused(index, getattr(exc, "retry_after", None))
        return plan.jobs

    async def search_and_wait(
        self, collection: str, query: str, *, timeout: float | None = None, **options: Any
    ) -> Any:
        job = await self.search(collection, query, **options)
        return (await job.wait(timeout)).result

    async def upload_and_wait(
        self, collection: str, files: Any, *, timeout: float | None = None, **options: Any
    ) -> Any:
        job = await self.documents.upload(collection, files, **options)
        return (await job.wait(timeout)).result


__all__ = ["AsyncQuarry", "Quarry", "QuarryError"]
