from __future__ import annotations

import marshmallow as ma
from flask import request
from flask_smorest import abort
from werkzeug.exceptions import BadRequest

from app.api import ACCEPTED_HEADERS, API_PREFIX, accepted, bounded_json
from app.api.idempotency_header import idempotency_of_request, idempotent
from app.api.job_schemas import JobSchema
from app.api.schemas import (
    CallbackSchema,
    CollectionCreateSchema,
    CollectionPageSchema,
    CollectionSchema,
    DocumentsInSchema,
    FilesInSchema,
    ListArgsSchema,
    SearchBatchRequestSchema,
    SearchRequestSchema,
    as_error_messages,
)
from app.api.web_extensions import Blueprint
from app.auth import current_principal, current_tenant_id
from app.extensions import db
from app.services import collections, documents, search_jobs, staging
from app.services.errors import UnsupportedMediaType, ValidationFailed
from app.services.storable import unstorable_values

blp = Blueprint(
    "collections",
    __name__,
    url_prefix=f"{API_PREFIX}/collections",
    description="Collections, their documents, and searches over them",
)


@blp.route("", methods=["POST"])
@blp.doc(operationId="create_collection")
@blp.arguments(CollectionCreateSchema)
@blp.response(201, CollectionSchema)
@blp.alt_response(409, description="A collection with that name exists")
def create_collection(body: dict):
    """Create an empty collection.

    `index_type` is `flat` (exact, the default) or `hnsw` (approximate, for
    large collections). Uploading to a collection that does not exist also
    creates it.
    """
    collection = collections.create_collection(db.session, current_tenant_id(), **body)
    return collections.attach_stats(db.session, [collection])[0]


@blp.route("", methods=["GET"])
@blp.doc(operationId="list_collections")
@blp.arguments(ListArgsSchema, location="query", as_kwargs=True)
@blp.response(200, CollectionPageSchema)
def list_collections(limit: int, cursor: str | None):
    """List collections, newest first.

    Each with its document and chunk counts. Send `next_cursor` back as
    `cursor` for the next page.
    """
    items, next_cursor = collections.list_collections(db.session, current_tenant_id(), limit=limit, cursor=cursor)
    return {"items": collections.attach_stats(db.session, list(items)), "next_cursor": next_cursor}


@blp.route("/<name>")
@blp.doc(operationId="get_collection")
@blp.response(200, CollectionSchema)
@blp.alt_response(404, description="No such collection")
def get_collection(name: str):
    """Read a collection with its document and chunk counts and index generation.

    `generation` moves with every change to the collection's index; a search
    result names the generation it searched.
    """
    collection = collections.get_collection(db.session, current_tenant_id(), name)
    return collections.attach_stats(db.session, [collection])[0]


@blp.route("/<name>", methods=["DELETE"])
@blp.doc(operationId="delete_collection")
@idempotent(blp)
@blp.response(202, JobSchema, headers=ACCEPTED_HEADERS)
@blp.alt_response(404, description="No such collection")
@blp.alt_response(503, description="The job queue is unreachable")
def delete_collection(name: str):
    """Delete a collection with its documents and indexes, as a job.

    Searches submitted after the job succeeds get 404; the name is free again.
    """
    job = documents.submit_delete_collection(db.session, current_principal(), name, idempotency_of_request())
    return accepted(job)


_UPLOAD_BODY = {
    "required": True,
    "content": {
        "application/json": {"schema": DocumentsInSchema},
        "multipart/form-data": {"schema": FilesInSchema},
    },
}


@blp.route("/<name>/documents", methods=["POST"])
@blp.doc(operationId="upload_documents", requestBody=_UPLOAD_BODY)
@idempotent(blp)
@blp.response(202, JobSchema, headers=ACCEPTED_HEADERS)
@blp.alt_response(413, description="A file or the request is over MAX_UPLOAD_MB")
@blp.alt_response(415, description="Unsupported content or file type")
@blp.alt_response(422, description="Invalid documents")
@blp.alt_response(503, description="The job queue is unreachable")
def upload_documents(name: str):
    """Add documents: JSON texts, or files as multipart `files` parts.

    Files may be txt, md, html (visible text), pdf, docx, json or jsonl
    (objects with `text` and optional `id` and `metadata`); the type is
    checked against the content, and a mismatch is 415. A file, JSON record
    or document that cannot be read or stored fails alone, in the job's
    `result.failed`. A document sent again with the same id and new content
    replaces the old version; a new id for a text already stored is kept
    (`result.same_text`). Creates the collection if absent. Answers at once
    with an ingest job.
    """
    principal = current_principal()
    if request.mimetype == "multipart/form-data":
        uploads = [staging.Upload(f.filename or "", f.stream) for f in request.files.getlist("files")]
        if not uploads:
            raise ValidationFailed(
                "The multipart body has no `files` part.",
                errors=[{"field": "files", "message": "Attach one or more files."}],
            )
        job = staging.submit_files(
            db.session, principal, name, uploads, _form_metadata(), _form_callback(), idempotency_of_request()
        )
    elif request.is_json:
        body = DocumentsInSchema().load(_json_body())
        documents = body.pop("documents")
        job = staging.submit_documents(db.session, principal, name, documents, body, idempotency_of_request())
    else:
        raise UnsupportedMediaType("Send application/json documents or multipart/form-data files.")
    return accepted(job)


@blp.route("/<name>/search", methods=["POST"])
@blp.doc(operationId="search_collection")
@idempotent(blp)
@blp.arguments(SearchRequestSchema)
@blp.response(202, JobSchema, headers=ACCEPTED_HEADERS)
@blp.alt_response(404, description="No such collection")
@blp.alt_response(503, description="The pipeline is unavailable, or the job queue is unreachable")
def submit_search(body: dict, name: str):
    """Search a collection. Answers at once with a search job to poll.

    The result holds `hits` (`document_id`, `chunk_id`, `score`, `text`,
    `metadata`), `pipeline`, `took_ms` and `index_generation`, and with
    `include_answer` an extractive `answer` citing its hits.
    """
    job = search_jobs.submit_search(db.session, current_principal(), name, body, idempotency_of_request())
    return accepted(job)


@blp.route("/<name>/search/batch", methods=["POST"])
@blp.doc(operationId="search_collection_batch")
@idempotent(blp)
@blp.arguments(SearchBatchRequestSchema)
@blp.response(202, JobSchema, headers=ACCEPTED_HEADERS)
@blp.alt_response(404, description="No such collection")
@blp.alt_response(503, description="The pipeline is unavailable, or the job queue is unreachable")
def submit_search_batch(body: dict, name: str):
    """Search a collection with 1-100 queries in one job, encoded together.

    The result holds `results`: one `{query, hits}` per query, in order.
    """
    job = search_jobs.submit_search_batch(db.session, current_principal(), name, body, idempotency_of_request())
    return accepted(job)


def _json_body():
    try:
        body = request.get_json()  # a body nested too deep is a 422 (BoundedRequest)
    except BadRequest:
        body = None
    if body is None:
        abort(400, message="The body is not valid JSON.")
    return body


def _form_callback() -> dict:
    form = {
        "callback_url": request.form.get("callback_url"),
        "callback_events": request.form.getlist("callback_events"),
    }
    return CallbackSchema().load({k: v for k, v in form.items() if v})


def _form_metadata() -> dict:
    raw = request.form.get("metadata")
    if not raw:
        return {}
    try:
        metadata = bounded_json.loads(raw)
    except bounded_json.TooDeep as exc:
        raise bounded_json.as_problem(exc, "metadata") from None
    except ValueError:
        metadata = None
    if not isinstance(metadata, dict):
        raise ValidationFailed(
            "The `metadata` part must be a JSON object.",
            errors=[{"field": "metadata", "message": "Must be a JSON object."}],
        )
    found = unstorable_values(metadata, ("metadata",))
    if found:
        raise ma.ValidationError(as_error_messages(found))
    return metadata
