"""A client generated from the served OpenAPI document with
openapi-python-client imports and works as generated: it uploads files and
texts, searches, polls jobs and reads each job type's result, through its
own functions and models only."""

from __future__ import annotations

import importlib
import io
import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from openapi_schema_validator import OAS30Validator

from devstack.waiting import wait_until
from tests.integration.corpora import unique

GENERATOR = Path(sys.executable).parent / "openapi-python-client"
PACKAGE = "quarry_generated_client"
FINISHED = ("succeeded", "failed", "cancelled")


@pytest.fixture(scope="module")
def spec(api) -> dict:
    return api.get("/openapi.json").json()


@pytest.fixture(scope="module")
def generated(spec, tmp_path_factory):
    """The generated package, imported."""
    workdir = tmp_path_factory.mktemp("generated-client")
    document = workdir / "openapi.json"
    document.write_text(json.dumps(spec))
    config = workdir / "config.yml"
    # No post hooks: the default one runs ruff over the output. The client
    # must import as the generator writes it.
    config.write_text("post_hooks: []\n")
    done = subprocess.run(
        [
            str(GENERATOR),
            "generate",
            "--path",
            str(document),
            "--config",
            str(config),
            "--meta",
            "none",
            "--output-path",
            str(workdir / PACKAGE),
            "--fail-on-warning",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    sys.path.insert(0, str(workdir))
    try:
        package = importlib.import_module(PACKAGE)
        importlib.import_module(f"{PACKAGE}.models")  # `generated.models`, whichever test runs first
        yield package
    finally:
        sys.path.remove(str(workdir))
        for name in [name for name in sys.modules if name.split(".")[0] == PACKAGE]:
            del sys.modules[name]


@pytest.fixture(scope="module")
def client(generated, api):
    """The generated client, with a key of a tenant of its own, talking to the
    app in this process through httpx's WSGI transport."""
    return generated.AuthenticatedClient(
        base_url=api.base_url,
        token=api.create_key(unique("client")),
        httpx_args={"transport": httpx.WSGITransport(app=api.app)},
    )


def operation(tag: str, operation_id: str):
    return importlib.import_module(f"{PACKAGE}.api.{tag}.{operation_id}")


def finished(client, job_id: str, worker):
    """The job once finished, polled through the generated client while the
    inline worker runs what is due."""
    get_job = operation("jobs", "get_job")

    def poll():
        worker.run_pending()
        job = get_job.sync(job_id, client=client)
        return job if job.status in FINISHED else None

    return wait_until(poll, 120, interval=0.2, what=f"job {job_id}")


def test_every_generated_module_imports(generated):
    modules = [
        importlib.import_module(module.name) for module in pkgutil.walk_packages(generated.__path__, f"{PACKAGE}.")
    ]
    names = {module.__name__.rsplit(".", 1)[-1] for module in modules}
    assert {"upload_documents", "search_collection", "get_job", "cancel_job", "health_ready"} <= names


def test_the_generated_client_uploads_searches_and_reads_the_hit(generated, client, api):
    models, types = generated.models, importlib.import_module(f"{PACKAGE}.types")
    name = unique("generated")
    lava = types.File(
        payload=io.BytesIO(b"Volcanoes erupt molten rock called lava.\n"), file_name="lava.txt", mime_type="text/plain"
    )

    upload = operation("collections", "upload_documents").sync_detailed(
        name, client=client, body=models.FilesIn(files=[lava], metadata='{"team": "geo"}')
    )
    assert upload.status_code == 202, upload.content
    assert isinstance(upload.parsed, models.IngestJob)
    assert upload.headers["Location"] == upload.parsed.links.self_
    ingest = finished(client, upload.parsed.id, api.worker)
    assert ingest.status == "succeeded" and ingest.result.documents == 1, ingest

    search = operation("collections", "search_collection").sync(
        name, client=client, body=models.SearchRequest(query="What comes out of a volcano?", top_k=3)
    )
    assert isinstance(search, models.SearchJob), search
    done = finished(client, search.id, api.worker)
    assert isinstance(done, models.SearchJob) and done.status == "succeeded", done
    hit = done.result.hits[0]
    assert hit.document_id == "lava.txt" and "lava" in hit.text
    assert hit.metadata["team"] == "geo"


def test_each_job_type_reads_as_its_own_model_and_matches_the_document(generated, client, spec, api):
    """Through the generated client, and as raw JSON against the served schema."""
    models = generated.models
    get_job = operation("jobs", "get_job")
    job_schema = OAS30Validator({"$ref": "#/components/schemas/Job", "components": spec["components"]})
    name = unique("types")

    def run(model, job):
        """The finished job, read as `model`; its JSON matches the document."""
        assert isinstance(job, model), job
        done = finished(client, job.id, api.worker)
        assert isinstance(done, model) and done.status == "succeeded", done
        job_schema.validate(json.loads(get_job.sync_detailed(job.id, client=client).content))
        return done.result

    texts = models.DocumentsIn(documents=[models.DocumentIn(id="bees", text="Honey bees make honey from nectar.")])
    ingest = run(models.IngestJob, operation("collections", "upload_documents").sync(name, client=client, body=texts))
    assert ingest.documents == 1 and ingest.failed == []

    queries = models.SearchBatchRequest(queries=["honey", "nectar"], include_answer=True)
    search_batch = operation("collections", "search_collection_batch")
    batch = run(models.SearchBatchJob, search_batch.sync(name, client=client, body=queries))
    assert [result.query for result in batch.results] == ["honey", "nectar"]
    assert batch.results[0].hits[0].document_id == "bees" and batch.results[0].answer.citations

    removed = run(models.DeleteDocumentJob, operation("documents", "delete_document").sync(name, "bees", client=client))
    assert removed.document_id == "bees" and removed.deleted is True

    dropped = run(models.DeleteCollectionJob, operation("collections", "delete_collection").sync(name, client=client))
    assert dropped.deleted is True and dropped.documents == 0
