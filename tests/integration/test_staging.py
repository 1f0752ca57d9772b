"""Uploads reach a worker that shares no disk with the web process, as on
Heroku: the shared stack's web and worker have different UPLOAD_DIRs and
stage uploads in the database (tests/conftest.py)."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.conftest import WORKER_UPLOAD_DIR
from tests.integration.corpora import unique

pytestmark = pytest.mark.integration


def files_under(folder: Path) -> list[Path]:
    return [path for path in folder.rglob("*") if path.is_file()] if folder.exists() else []


def staged_rows(database_url: str, job_ids: list[str]) -> int:
    engine = sa.create_engine(database_url)
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT count(*) FROM staged_uploads WHERE job_id IN :ids").bindparams(
                    sa.bindparam("ids", expanding=True)
                ),
                {"ids": job_ids},
            ).scalar_one()
    finally:
        engine.dispose()


def test_a_file_upload_is_ingested_when_web_and_worker_have_different_upload_dirs(service, database_url):
    web_dir, worker_dir = service.workdir / "var" / "uploads", service.workdir / WORKER_UPLOAD_DIR
    name = unique("staging")
    assert service.post("/api/v1/collections", json={"name": name}).status_code == 201
    kayaks = b"# Kayaks\nA sea kayak has a skeg or rudder to hold its course in crosswinds."
    submits = [
        service.post(
            f"/api/v1/collections/{name}/documents", files=[("files", ("kayaks.md", kayaks, "text/markdown"))]
        ),
        service.post(
            f"/api/v1/collections/{name}/documents",
            json={"documents": [{"id": "yurts", "text": "Nomads on the steppe live in felt-covered yurts."}]},
        ),
    ]
    job_ids = []
    for response in submits:
        assert response.status_code == 202, response.text
        job = service.wait_job(response.json()["id"], timeout=180)
        assert job["status"] == "succeeded" and job["result"]["documents"] == 1, job
        job_ids.append(job["id"])

    for query, expected in (("rudder crosswinds", "kayaks.md"), ("felt tents of the steppe", "yurts")):
        hits = service.search(name, query=query, pipeline="hybrid", top_k=1)["result"]["hits"]
        assert hits[0]["document_id"] == expected, (query, hits)
    # Nothing went through either process's disk, and the staged rows are gone.
    assert files_under(web_dir) == [] and files_under(worker_dir) == []
    assert staged_rows(database_url, job_ids) == 0
