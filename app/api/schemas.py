"""Marshmallow schemas: request validation and the one JSON shape of each object."""

from __future__ import annotations

import json
import re
from datetime import UTC

import marshmallow as ma
from marshmallow import fields, validate

from app.api import bounded_json
from app.models import DOCUMENT_ID_MAX_LENGTH
from app.search.pipelines import COLLAPSE_MODES, DEFAULT_PIPELINE, PIPELINES
from app.services.collections import INDEX_TYPES, NAME_PATTERN
from app.services.jobs import JOB_TYPES, STATUSES
from app.services.keys import SCOPES, TIERS
from app.services.storable import unstorable_values
from app.services.webhooks.events import JOB_EVENTS

# Bounds of query parameters: the request line may be up to 8 KB (gunicorn's
# limit_request_line), and what is longer than any valid value is a 422 naming it.
CURSOR_MAX_LENGTH = 1024
COLLECTION_NAME_MAX_LENGTH = 64


def as_error_messages(found: list[tuple[tuple, str]]) -> dict:
    """marshmallow's nested error dict, so the field reads `documents.0.text`.
    A field with messages of its own and of fields within it (a bad key whose
    value holds bad keys too) keeps its own under `_schema`, as marshmallow does."""
    messages: dict = {}
    for path, message in found:
        *parents, leaf = path or ("_schema",)
        node = messages
        for key in parents:
            child = node.setdefault(key, {})
            if isinstance(child, list):  # the field already has messages of its own
                child = node[key] = {"_schema": child}
            node = child
        if isinstance(node.get(leaf), dict):  # the field already has fields with messages
            node, leaf = node[leaf], "_schema"
        node.setdefault(leaf, []).append(message)
    return messages


class StrictSchema(ma.Schema):
    """Request input: unknown fields are refused, and so are text and numbers
    that cannot be stored (app/services/storable.py), before any of it
    reaches a service or SQL."""

    class Meta:
        unknown = ma.RAISE

    @ma.pre_load
    def _refuse_unstorable_values(self, data, **_kwargs):
        found = unstorable_values(data)
        if found:
            raise ma.ValidationError(as_error_messages(found))
        return data


# --- lists --------------------------------------------------------------------


class ListArgsSchema(StrictSchema):
    limit = fields.Integer(load_default=20, validate=validate.Range(min=1, max=100))
    cursor = fields.String(load_default=None, validate=validate.Length(max=CURSOR_MAX_LENGTH))


class JobListArgsSchema(ListArgsSchema):
    status = fields.String(validate=validate.OneOf(STATUSES))
    type = fields.String(validate=validate.OneOf(JOB_TYPES))
    collection = fields.String(validate=validate.Length(max=COLLECTION_NAME_MAX_LENGTH))


def page_schema(item_schema: type[ma.Schema], name: str) -> type[ma.Schema]:
    return ma.Schema.from_dict(
        {
            "items": fields.List(
                fields.Nested(item_schema), required=True, metadata={"description": "This page, newest first"}
            ),
            "next_cursor": fields.String(
                allow_none=True,
                required=True,
                metadata={"description": "Send as `cursor` for the next page; null on the last page"},
            ),
        },
        name=name,
    )


# --- callbacks ------------------------------------------------------------------


class CallbackSchema(StrictSchema):
    """A job's own receiver: its events are POSTed there, signed with the
    tenant's secret (GET /api/v1/webhooks/secret)."""

    callback_url = fields.String(
        validate=validate.Length(min=1, max=2048),
        metadata={
            "description": "http(s) URL that receives this job's events",
            "example": "https://example.com/hooks/quarry",
        },
    )
    callback_events = fields.List(
        fields.String(validate=validate.OneOf(JOB_EVENTS, error="Event type must be one of: {choices}.")),
        validate=validate.Length(min=1),
        metadata={
            "description": "Which events (default: job.succeeded, job.failed, job.cancelled)",
            "example": ["job.succeeded", "job.failed"],
        },
    )


# --- collections ---------------------------------------------------------------


class CollectionCreateSchema(StrictSchema):
    name = fields.String(
        required=True,
        validate=validate.Regexp(
            NAME_PATTERN,
            error="Use 1-64 characters: lowercase letters, digits, '_' or '-', starting with a letter or digit.",
        ),
        # The same rule in the ECMA-262 regex dialect OpenAPI uses (Python's \Z is not in it).
        metadata={"pattern": "^[a-z0-9][a-z0-9_-]{0,63}$"},
    )
    description = fields.String(validate=validate.Length(max=2000), allow_none=True)
    index_type = fields.String(
        load_default="flat",
        validate=validate.OneOf(INDEX_TYPES, error="Index type must be one of: {choices}."),
    )


class CollectionSchema(ma.Schema):
    name = fields.String()
    description = fields.String(allow_none=True)
    index_type = fields.String()
    documents = fields.Integer()
    chunks = fields.Integer()
    generation = fields.Integer()
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


CollectionPageSchema = page_schema(CollectionSchema, "CollectionPage")


# --- documents -----------------------------------------------------------------


# Metadata rides along with every hit and every stored chunk; filters are
# matched key by key. Bounds keep both what they are for.
METADATA_MAX_BYTES = 16 * 1024
FILTERS_MAX_KEYS = 64
FILTER_MAX_VALUES = 1000


class DocumentInSchema(StrictSchema):
    id = fields.String(validate=validate.Length(min=1, max=DOCUMENT_ID_MAX_LENGTH))
    text = fields.String(required=True, validate=validate.Length(min=1))
    metadata = fields.Dict(keys=fields.String(), load_default=dict)

    @ma.validates("metadata")
    def _small_metadata(self, value: dict, **_kwargs) -> None:
        if len(json.dumps(value)) > METADATA_MAX_BYTES:  # escapes count as written
            raise ma.ValidationError(f"Metadata must be at most {METADATA_MAX_BYTES // 1024} KiB as JSON.")

    @ma.validates("text")
    def _has_text(self, value: str, **_kwargs) -> None:
        if not value.strip():
            raise ma.ValidationError("Text must not be blank.")


class DocumentsInSchema(CallbackSchema):
    documents = fields.List(fields.Nested(DocumentInSchema), required=True, validate=validate.Length(min=1, max=10000))


class FilesInSchema(ma.Schema):
    """Documents the multipart form; the view reads the parts itself."""

    files = fields.List(fields.Raw(metadata={"type": "string", "format": "binary"}), required=True)
    metadata = fields.String(metadata={"description": "JSON object applied to every file's metadata"})
    callback_url = fields.String(metadata={"description": "http(s) URL that receives this job's events"})
    callback_events = fields.List(fields.String(), metadata={"description": "Which events; one part each"})


# --- search --------------------------------------------------------------------


class SearchOptionsSchema(CallbackSchema):
    """What a single search and a batch share."""

    top_k = fields.Integer(
        load_default=10,
        strict=True,
        validate=validate.Range(min=1, max=100),
        metadata={"description": "How many hits (documents, with collapse) to return", "example": 10},
    )
    pipeline = fields.String(
        load_default=DEFAULT_PIPELINE,
        validate=validate.OneOf(sorted(PIPELINES), error="Pipeline must be one of: {choices}."),
        metadata={
            "description": "dense, keyword, hybrid (default) or rerank; see GET /api/v1/pipelines",
            "example": "hybrid",
        },
    )
    filters = fields.Dict(
        keys=fields.String(),
        load_default=dict,
        metadata={
            "description": "Metadata key -> value, or a list of accepted values; `document_id` -> "
            "a list of document ids. Every key must match.",
            "example": {"lang": "en", "tags": ["a", "b"]},
        },
    )
    collapse = fields.String(
        load_default="chunk",
        validate=validate.OneOf(COLLAPSE_MODES),
        metadata={
            "description": "`chunk` (default): every matching chunk; `document`: each document once, at its "
            "best chunk's rank",
            "example": "document",
        },
    )
    include_answer = fields.Boolean(
        load_default=False,
        metadata={
            "description": "Add `answer`: the hits' sentences closest to the query, with citations",
            "example": True,
        },
    )

    @ma.validates("filters")
    def _scalar_filters(self, value: dict, **_kwargs) -> None:
        if len(value) > FILTERS_MAX_KEYS:
            raise ma.ValidationError(f"At most {FILTERS_MAX_KEYS} filter keys.")
        for key, wanted in value.items():
            values = wanted if isinstance(wanted, list) else [wanted]
            if len(values) > FILTER_MAX_VALUES:
                raise ma.ValidationError(f"Filter {key!r} may list at most {FILTER_MAX_VALUES} values.")
            if not values or not all(isinstance(v, (str, int, float, bool)) for v in values):
                raise ma.ValidationError(
                    f"Filter {key!r} must be a string, number or boolean, or a non-empty list of them."
                )


def _not_blank(value: str) -> None:
    if not value.strip():
        raise ma.ValidationError("Query must not be blank.")


class SearchRequestSchema(SearchOptionsSchema):
    query = fields.String(
        required=True,
        validate=[validate.Length(min=1, max=10000), _not_blank],
        metadata={"description": "What to search for, 1-10000 characters", "example": "how do I tie a loop in a rope?"},
    )


class SearchBatchRequestSchema(SearchOptionsSchema):
    queries = fields.List(
        fields.String(validate=[validate.Length(min=1, max=10000), _not_blank]),
        required=True,
        validate=validate.Length(min=1, max=100),
        metadata={
            "description": "1-100 queries, answered in order in one job",
            "example": ["how do I tie a loop in a rope?", "what is lava?"],
        },
    )


class PipelineStatsSchema(ma.Schema):
    searches = fields.Integer(metadata={"description": "Succeeded searches in the sample"})
    p50_took_ms = fields.Float(allow_none=True)
    p95_took_ms = fields.Float(allow_none=True)
    window = fields.String(metadata={"description": "Which jobs the figures come from"})


class PipelineSchema(ma.Schema):
    name = fields.String()
    status = fields.String(metadata={"enum": ["healthy", "degraded", "unavailable"]})
    description = fields.String()
    capabilities = fields.List(fields.String())
    default = fields.Boolean()
    reason = fields.String(allow_none=True, metadata={"description": "Why it is unavailable"})
    stats = fields.Nested(PipelineStatsSchema)


# --- documents (read) -------------------------------------------------------------


class DocumentSchema(ma.Schema):
    id = fields.String(attribute="external_id")
    metadata = fields.Dict(attribute="meta")
    chunks = fields.Integer(attribute="chunk_count")
    content_hash = fields.String(metadata={"description": "SHA-256 of the text"})
    status = fields.String()
    source = fields.String(allow_none=True)
    created_at = fields.DateTime()


DocumentPageSchema = page_schema(DocumentSchema, "DocumentPage")


# Keys a JSON path can name on every database: no quotes, backslashes or controls.
_FILTER_KEY = re.compile(r'[^"\\\x00-\x1f]{1,128}')


class DocumentListArgsSchema(ListArgsSchema):
    metadata = fields.String(
        metadata={
            "description": "JSON object: only documents whose metadata has each key at that value, or at one "
            'of a list of values, compared as text, e.g. {"lang": "en"}',
            "example": '{"lang": "en"}',
        }
    )

    @ma.post_load
    def _parse_metadata(self, data, **_kwargs):
        raw = data.get("metadata")
        if raw is None:
            return data
        try:
            parsed = bounded_json.loads(raw)
        except ValueError:  # TooDeep too: the part is refused below
            parsed = None
        if (
            not isinstance(parsed, dict)
            or unstorable_values(parsed)
            or not all(
                _FILTER_KEY.fullmatch(k) and (isinstance(v, (str, int, float, bool)) or (isinstance(v, list) and v))
                for k, v in parsed.items()
            )
        ):
            raise ma.ValidationError({"metadata": ["Must be a JSON object of key -> value (or list of values)."]})
        data["metadata"] = parsed
        return data


# --- API keys --------------------------------------------------------------------


class KeyCreateSchema(StrictSchema):
    name = fields.String(required=True, validate=validate.Length(min=1, max=128))
    scopes = fields.List(
        fields.String(validate=validate.OneOf(SCOPES)),
        required=True,
        validate=validate.Length(min=1),
    )
    tier = fields.String(load_default="free", validate=validate.OneOf(TIERS))
    expires_at = fields.AwareDateTime(load_default=None, allow_none=True, default_timezone=UTC)


class KeySchema(ma.Schema):
    """A key as listed: never the secret."""

    id = fields.String()
    name = fields.String()
    prefix = fields.String(metadata={"description": "Visible start of the key, to recognise it"})
    scopes = fields.List(fields.String())
    tier = fields.String()
    created_at = fields.DateTime()
    last_used_at = fields.DateTime(allow_none=True)
    expires_at = fields.DateTime(allow_none=True)
    revoked = fields.Function(lambda key: key.revoked_at is not None)
    revoked_at = fields.DateTime(allow_none=True)
    rotated_from = fields.String(attribute="rotated_from_id", allow_none=True)


class NewKeySchema(KeySchema):
    key = fields.String(metadata={"description": "The secret key. Shown only in this response: store it now."})


KeyPageSchema = page_schema(KeySchema, "KeyPage")
