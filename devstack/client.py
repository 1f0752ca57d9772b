"""The one HTTP client of the service, for the tests, the devstack and the
benchmarks: requests with an API key, submitting a job and polling it the
way the API asks (`poll_after_ms`, `If-None-Match`, `Retry-After`).

It stays on requests rather than httpx: the integration tests hand its
Session to schemathesis and stream responses through it."""

from __future__ import annotations

import time
from collections.abc import Callable

import requests

from app.services.jobs import TERMINAL
from devstack.waiting import wait_until

# Answers that refuse a request for now and say, in Retry-After, when to retry.
REFUSALS = (429, 503)


class JobNotFinal(RuntimeError):
    """A job still not final at its deadline, or a poll answered with an error."""


def poll_until_final(
    get: Callable[..., requests.Response], job: dict, timeout: float, min_wait: float = 0.0, max_wait: float = 60.0
) -> tuple[dict, int]:
    """(the final job, polls made). `get(path, headers=...)` is called after
    each wait: the job's `poll_after_ms` (or Retry-After when refused), kept
    within [min_wait, max_wait]; the last ETag goes in If-None-Match, so an
    unchanged job answers 304. `get` may be any session's (locust's too)."""
    etag, polls, wait = None, 0, 1.0
    deadline = time.monotonic() + timeout
    response: requests.Response | None = None
    while job["status"] not in TERMINAL:
        if response is not None and response.status_code in REFUSALS:
            wait = float(response.headers.get("Retry-After", wait))
        elif job.get("poll_after_ms") is not None:
            wait = job["poll_after_ms"] / 1000
        wait = min(max(wait, min_wait), max_wait)
        if time.monotonic() + wait > deadline:
            raise JobNotFinal(f"job {job['id']} still {job['status']} after {timeout:.0f} s")
        time.sleep(wait)
        response = get(f"/api/v1/jobs/{job['id']}", headers={"If-None-Match": etag} if etag else {})
        polls += 1
        if response.status_code == 200:
            job, etag = response.json(), response.headers.get("ETag")
        elif response.status_code != 304 and response.status_code not in REFUSALS:
            raise JobNotFinal(f"polling job {job['id']} answered {response.status_code}")
    return job, polls


class JobCalls:
    """Submit-and-wait calls over a client's get/post (this module's Client
    over HTTP, the in-process tier's through test_client())."""

    # Seconds between polls of wait_job.
    poll_interval = 0.2

    def wait_job(self, job_id: str, timeout: float = 120) -> dict:
        def finished():
            job = self.get(f"/api/v1/jobs/{job_id}").json()
            return job if job["status"] in TERMINAL else None

        return wait_until(finished, timeout, interval=self.poll_interval, what=f"job {job_id}")

    def ingest(self, collection: str, documents: list[dict], timeout: float = 180) -> dict:
        response = self.post(f"/api/v1/collections/{collection}/documents", json={"documents": documents})
        assert response.status_code == 202, response.text
        return self.wait_job(response.json()["id"], timeout)

    def search(self, collection: str, timeout: float = 60, **body) -> dict:
        response = self.post(f"/api/v1/collections/{collection}/search", json=body)
        assert response.status_code == 202, response.text
        return self.wait_job(response.json()["id"], timeout)


class Client(JobCalls):
    """An HTTP client of the service, sending one API key (or none)."""

    def __init__(self, base_url: str, key: str | None = None) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        if key:
            self.authenticate(key)

    def url(self, path: str) -> str:
        return self.base_url + path

    def authenticate(self, key: str) -> None:
        """Send `key` from now on."""
        self.http.headers["Authorization"] = f"Bearer {key}"

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url(path), timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.http.post(self.url(path), timeout=60, **kwargs)

    def patch(self, path: str, **kwargs) -> requests.Response:
        return self.http.patch(self.url(path), timeout=30, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.http.delete(self.url(path), timeout=30, **kwargs)

    def submit(self, path: str, body: dict, retries: int = 0) -> dict:
        """POST a job; its 202 answer (the queued job). A refusal for now
        (429, 503) is sent again after its Retry-After, `retries` times at most."""
        response = self.post(path, json=body)
        for _ in range(retries):
            if response.status_code not in REFUSALS:
                break
            time.sleep(float(response.headers.get("Retry-After", 1)))
            response = self.post(path, json=body)
        if response.status_code != 202:
            raise RuntimeError(f"POST {path} answered {response.status_code}: {response.text[:300]}")
        return response.json()

    def poll(self, job: dict, timeout: float = 120, min_wait: float = 0.0) -> tuple[dict, int]:
        """Poll a submitted job as its hints say until it is final: (job, polls)."""
        return poll_until_final(self.get, job, timeout, min_wait)
