from __future__ import annotations

from app.api import ACCEPTED_HEADERS, API_PREFIX, accepted
from app.api.idempotency_header import idempotency_of_request, idempotent
from app.api.job_schemas import JobSchema
from app.api.schemas import DocumentListArgsSchema, DocumentPageSchema, DocumentSchema
from app.api.web_extensions import Blueprint
from app.auth import current_principal, current_tenant_id
from app.extensions import db
from app.services import documents

blp = Blueprint(
    "documents",
    __name__,
    url_prefix=f"{API_PREFIX}/collections/<name>/documents",
    description="A collection's documents: list, read, delete",
)


@blp.route("", methods=["GET"])
@blp.doc(operationId="list_documents")
@blp.arguments(DocumentListArgsSchema, location="query", as_kwargs=True)
@blp.response(200, DocumentPageSchema)
@blp.alt_response(404, description="No such collection")
def list_documents(name: str, limit: int, cursor: str | None, metadata: dict | None = None):
    """List a collection's documents, newest first, optionally by metadata.

    `metadata` is a JSON object: only documents whose metadata has each key
    at that value (or at one of a list of values). Send `next_cursor` back as
    `cursor` for the next page.
    """
    items, next_cursor = documents.list_documents(
        db.session, current_tenant_id(), name, limit=limit, cursor=cursor, metadata=metadata
    )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/<path:doc_id>", methods=["GET"])
@blp.doc(operationId="get_document")
@blp.response(200, DocumentSchema)
@blp.alt_response(404, description="No such collection or document")
def get_document(name: str, doc_id: str):
    """Read a document: metadata, content hash, chunk count, status, created.

    `doc_id` is the document's id as a search hit's `document_id` shows it.
    """
    return documents.get_document(db.session, current_tenant_id(), name, doc_id)


@blp.route("/<path:doc_id>", methods=["DELETE"])
@blp.doc(operationId="delete_document")
@idempotent(blp)
@blp.response(202, JobSchema, headers=ACCEPTED_HEADERS)
@blp.alt_response(404, description="No such collection or document")
@blp.alt_response(503, description="The job queue is unreachable")
def delete_document(name: str, doc_id: str):
    """Delete a document, as a job.

    The job removes its vectors, keyword entries and rows. Searches after the
    job succeeds never return its text.
    """
    job = documents.submit_delete_document(db.session, current_principal(), name, doc_id, idempotency_of_request())
    return accepted(job)
