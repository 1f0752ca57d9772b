"""The job's JSON, one schema per job type.

app/services/jobs/serialize.py builds the JSON; these schemas document it and
dump it unchanged (tests/unit/test_job_schemas.py). `Job` is one of
IngestJob, SearchJob, SearchBatchJob, DeleteDocumentJob and DeleteCollectionJob,
told apart by the job's `type` (an OpenAPI discriminator), each with its own
`result`. The result itself carries no `type`: the job's does.
"""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields
from marshmallow_oneofschema import OneOfSchema

from app.api.schemas import page_schema
from app.search.pipelines import PIPELINES
from app.services.jobs import STATUSES

_JOB_ID = "9b2f6c1e4d5a4e0f8a7b6c5d4e3f2a1b"


def _doc(description: str, example) -> dict:
    return {"description": description, "example": example}


def _timestamp(description: str, example: str, **kwargs) -> fields.String:
    # serialize.py writes ISO 8601 text already: a String, documented as a date-time.
    return fields.String(required=True, metadata={**_doc(description, example), "format": "date-time"}, **kwargs)


# --- what every job has ----------------------------------------------------------


class ProgressSchema(ma.Schema):
    processed = fields.Integer(
        required=True, metadata=_doc("Units done: files or documents of an ingest, queries of a search", 1)
    )
    total = fields.Integer(required=True, metadata=_doc("Units the job has in all", 2))
    percent = fields.Float(required=True, metadata=_doc("processed / total, 0-100, one decimal", 50.0))


class JobErrorSchema(ma.Schema):
    code = fields.String(
        required=True, metadata=_doc("Stable machine-readable reason the job failed", "upload_missing")
    )
    message = fields.String(
        required=True,
        metadata=_doc("What went wrong, for a person", "The uploaded files are no longer in the upload store."),
    )


class JobLinksSchema(ma.Schema):
    self = fields.String(required=True, metadata=_doc("Where to poll the job", f"/api/v1/jobs/{_JOB_ID}"))


class _JobFieldsSchema(ma.Schema):
    """The fields every job type shares; `type` and `result` are per type."""

    id = fields.String(required=True, metadata=_doc("The job's id", _JOB_ID))
    status = fields.String(
        required=True,
        metadata={**_doc("queued, running, then succeeded, failed or cancelled", "succeeded"), "enum": list(STATUSES)},
    )
    collection = fields.String(
        required=True, allow_none=True, metadata=_doc("The collection the job works on", "notes")
    )
    progress = fields.Nested(
        ProgressSchema,
        required=True,
        metadata=_doc("How far the job is", {"processed": 1, "total": 2, "percent": 50.0}),
    )
    error = fields.Nested(
        JobErrorSchema,
        required=True,
        allow_none=True,
        metadata=_doc(
            "Why the job failed; null unless `status` is failed",
            {"code": "not_found", "message": "The collection was deleted before the search ran."},
        ),
    )
    attempts = fields.Integer(
        required=True,
        metadata=_doc("How many times a worker has started the job (a crashed worker's job is retried)", 1),
    )
    cancel_requested = fields.Boolean(
        required=True,
        metadata=_doc("A cancel was asked for; a running job stops at its next checkpoint", False),
    )
    created_at = _timestamp("When the job was submitted", "2026-01-05T10:00:00+00:00")
    started_at = _timestamp("When a worker started it; null while queued", "2026-01-05T10:00:01+00:00", allow_none=True)
    finished_at = _timestamp(
        "When it finished; null while queued or running", "2026-01-05T10:00:02+00:00", allow_none=True
    )
    links = fields.Nested(
        JobLinksSchema, required=True, metadata=_doc("Related URLs", {"self": f"/api/v1/jobs/{_JOB_ID}"})
    )
    poll_after_ms = fields.Integer(
        metadata=_doc(
            "Only while queued or running: milliseconds until a poll is worth making (what is left of "
            "the time three in four recent jobs of its type took from submit to success, or half the job's age once it "
            "is older than that)",
            200,
        )
    )


# --- results ------------------------------------------------------------------------


class IngestFailureSchema(ma.Schema):
    source = fields.String(required=True, metadata=_doc("The file name or document id", "scan.pdf"))
    error = fields.String(required=True, metadata=_doc("Why it could not be read", "the document holds no text"))


class IngestSameTextSchema(ma.Schema):
    id = fields.String(required=True, metadata=_doc("The document's id", "owl-copy"))
    same_text_as = fields.String(
        required=True, metadata=_doc("A document of the collection that holds the same text", "owl")
    )


class IngestResultSchema(ma.Schema):
    documents = fields.Integer(required=True, metadata=_doc("Documents added or replaced", 2))
    chunks = fields.Integer(required=True, metadata=_doc("Chunks written and indexed", 2))
    skipped_duplicates = fields.Integer(
        required=True,
        metadata=_doc(
            "Documents already stored with the same content under the same id (or, without an id of their "
            "own, under any id): nothing written",
            0,
        ),
    )
    failed = fields.List(
        fields.Nested(IngestFailureSchema),
        required=True,
        metadata=_doc("Files or documents that failed alone; the others were ingested", []),
    )
    same_text = fields.List(
        fields.Nested(IngestSameTextSchema),
        metadata=_doc(
            "Documents stored under their own id whose text another document of the collection holds "
            "(counted in `documents`; the stored vectors are reused)",
            [],
        ),
    )
    index_generation = fields.Integer(
        required=True,
        allow_none=True,
        metadata=_doc("The collection's index generation that holds the documents (null if it was deleted)", 2),
    )


_HIT_EXAMPLE = {
    "document_id": "knots.md",
    "chunk_id": "2",
    "score": 0.61,
    "text": "# Knots\nA bowline makes a fixed loop at the end of a rope.",
    "metadata": {"filename": "knots.md"},
}
_CITATION_EXAMPLE = {"text": "A bowline makes a fixed loop.", "document_id": "knots.md", "chunk_id": "2", "score": 0.72}


class HitSchema(ma.Schema):
    document_id = fields.String(required=True, metadata=_doc("The document's id", "knots.md"))
    chunk_id = fields.String(required=True, metadata=_doc("The chunk's id", "2"))
    score = fields.Float(required=True, metadata=_doc("Relevance under the search's pipeline; higher is better", 0.61))
    text = fields.String(required=True, metadata=_doc("The chunk's text", _HIT_EXAMPLE["text"]))
    metadata = fields.Dict(
        keys=fields.String(), required=True, metadata=_doc("The document's metadata", {"filename": "knots.md"})
    )


class CitationSchema(ma.Schema):
    text = fields.String(required=True, metadata=_doc("A sentence of a hit", "A bowline makes a fixed loop."))
    document_id = fields.String(required=True, metadata=_doc("The cited hit's document", "knots.md"))
    chunk_id = fields.String(required=True, metadata=_doc("The cited hit's chunk", "2"))
    score = fields.Float(required=True, metadata=_doc("How close the sentence is to the query", 0.72))


class AnswerSchema(ma.Schema):
    text = fields.String(
        required=True, metadata=_doc("The hits' sentences closest to the query", "A bowline makes a fixed loop.")
    )
    citations = fields.List(
        fields.Nested(CitationSchema),
        required=True,
        metadata=_doc("Where each sentence comes from", [_CITATION_EXAMPLE]),
    )


def _hits() -> fields.List:
    return fields.List(fields.Nested(HitSchema), required=True, metadata=_doc("Best first", [_HIT_EXAMPLE]))


def _answer() -> fields.Nested:
    return fields.Nested(
        AnswerSchema,
        allow_none=True,
        metadata=_doc(
            "Only with `include_answer`: an extractive answer (null without hits)",
            {"text": "A bowline makes a fixed loop.", "citations": [_CITATION_EXAMPLE]},
        ),
    )


class _SearchTimingsSchema(ma.Schema):
    pipeline = fields.String(
        required=True, metadata={**_doc("The pipeline that answered", "hybrid"), "enum": sorted(PIPELINES)}
    )
    took_ms = fields.Float(required=True, metadata=_doc("Time spent searching, in milliseconds", 14.2))
    index_generation = fields.Integer(required=True, metadata=_doc("The index generation searched", 2))


class SearchResultSchema(_SearchTimingsSchema):
    hits = _hits()
    answer = _answer()
    cached = fields.Boolean(
        required=True, metadata=_doc("Served from the result cache of an identical earlier search", False)
    )


class QueryResultSchema(ma.Schema):
    query = fields.String(required=True, metadata=_doc("One of the batch's queries", "how do I tie a loop?"))
    hits = _hits()
    answer = _answer()


class SearchBatchResultSchema(_SearchTimingsSchema):
    results = fields.List(
        fields.Nested(QueryResultSchema),
        required=True,
        metadata=_doc("One per query, in the order sent", [{"query": "how do I tie a loop?", "hits": [_HIT_EXAMPLE]}]),
    )


class DeleteDocumentResultSchema(ma.Schema):
    document_id = fields.String(required=True, metadata=_doc("The deleted document's id", "knots.md"))
    deleted = fields.Boolean(required=True, metadata=_doc("false when the document was already gone", True))
    chunks = fields.Integer(required=True, metadata=_doc("Chunks removed", 1))
    index_generation = fields.Integer(
        required=True,
        allow_none=True,
        metadata=_doc("The index generation without it (null if the collection is gone)", 3),
    )


class DeleteCollectionResultSchema(ma.Schema):
    deleted = fields.Boolean(required=True, metadata=_doc("The collection is gone", True))
    documents = fields.Integer(required=True, metadata=_doc("Documents removed", 2))
    chunks = fields.Integer(required=True, metadata=_doc("Chunks removed", 2))


# --- one job schema per type ------------------------------------------------------


def _job_schema(job_type: str, result_schema: type[ma.Schema], result_example: dict) -> type[ma.Schema]:
    """`{JobType}JobSchema`: the shared fields, `type` fixed, and the type's result."""
    name = "".join(part.title() for part in job_type.split("_")) + "JobSchema"
    return _JobFieldsSchema.from_dict(
        {
            "type": fields.String(
                required=True, metadata={**_doc("The job type: what `result` holds", job_type), "enum": [job_type]}
            ),
            "result": fields.Nested(
                result_schema,
                required=True,
                allow_none=True,
                metadata=_doc(
                    "Set when the job succeeded (and for a cancelled ingest, what it did); else null", result_example
                ),
            ),
        },
        name=name,
    )


JOB_SCHEMAS: dict[str, type[ma.Schema]] = {
    "ingest": _job_schema(
        "ingest",
        IngestResultSchema,
        {"documents": 2, "chunks": 2, "skipped_duplicates": 0, "failed": [], "index_generation": 2},
    ),
    "search": _job_schema(
        "search",
        SearchResultSchema,
        {"hits": [_HIT_EXAMPLE], "pipeline": "hybrid", "took_ms": 14.2, "index_generation": 2, "cached": False},
    ),
    "search_batch": _job_schema(
        "search_batch",
        SearchBatchResultSchema,
        {
            "results": [{"query": "how do I tie a loop?", "hits": [_HIT_EXAMPLE]}],
            "pipeline": "hybrid",
            "took_ms": 20.5,
            "index_generation": 2,
        },
    ),
    "delete_document": _job_schema(
        "delete_document",
        DeleteDocumentResultSchema,
        {"document_id": "knots.md", "deleted": True, "chunks": 1, "index_generation": 3},
    ),
    "delete_collection": _job_schema(
        "delete_collection", DeleteCollectionResultSchema, {"deleted": True, "documents": 2, "chunks": 2}
    ),
}


class JobSchema(OneOfSchema):
    """A job: the schema of its `type`."""

    # Instances, made once: OneOfSchema would otherwise make one per job it
    # dumps, and that instance its nested schemas again, on every poll.
    type_schemas = {job_type: schema() for job_type, schema in JOB_SCHEMAS.items()}

    def get_obj_type(self, obj) -> str:
        return obj["type"]


JobPageSchema = page_schema(JobSchema, "JobPage")
