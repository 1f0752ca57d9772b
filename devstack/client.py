"""An HTTP client of the service: requests with an API key, and helpers that
submit a job and wait for it to finish."""

from __future__ import annotations

import requests

from app.services.jobs import TERMINAL
from devstack.waiting import wait_until


class Client:
    """An HTTP client of the service, sending one API key (or none)."""

    def __init__(self, base_url: str, key: str | None = None) -> None:
        self.base_url = base_url
        self.http = requests.Session()
        if key:
            self.http.headers["Authorization"] = f"Bearer {key}"

    def url(self, path: str) -> str:
        return self.base_url + path

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.http.get(self.url(path), timeout=30, **kwargs)

    def post(self, path: str, **kwargs) -> requests.Response:
        return self.http.post(self.url(path), timeout=60, **kwargs)

    def patch(self, path: str, **kwargs) -> requests.Response:
        return self.http.patch(self.url(path), timeout=30, **kwargs)

    def delete(self, path: str, **kwargs) -> requests.Response:
        return self.http.delete(self.url(path), timeout=30, **kwargs)

    def wait_job(self, job_id: str, timeout: float = 120) -> dict:
        def finished():
            job = self.get(f"/api/v1/jobs/{job_id}").json()
            return job if job["status"] in TERMINAL else None

        return wait_until(finished, timeout, interval=0.2, what=f"job {job_id}")

    def ingest(self, collection: str, documents: list[dict], timeout: float = 180) -> dict:
        response = self.post(f"/api/v1/collections/{collection}/documents", json={"documents": documents})
        assert response.status_code == 202, response.text
        return self.wait_job(response.json()["id"], timeout)

    def search(self, collection: str, timeout: float = 60, **body) -> dict:
        response = self.post(f"/api/v1/collections/{collection}/search", json=body)
        assert response.status_code == 202, response.text
        return self.wait_job(response.json()["id"], timeout)
