"""The `Idempotency-Key` header of a submit: the key, and a fingerprint of
what the request asks for (route and content, not its bytes: a JSON body
re-serialised or a multipart body with a new boundary is the same request)."""

from __future__ import annotations

import hashlib
import json

from flask import request

from app.services.errors import ValidationFailed
from app.services.jobs.idempotency import Idempotency

HEADER = "Idempotency-Key"
_BLOCK = 1024 * 1024


def idempotency_of_request() -> Idempotency | None:
    key = request.headers.get(HEADER)
    if key is None:
        return None
    if not (1 <= len(key) <= 255 and key.isascii() and key.isprintable()):
        raise ValidationFailed(
            f"The {HEADER} header must be 1-255 printable ASCII characters.",
            errors=[{"field": HEADER, "message": "Use 1-255 printable ASCII characters, e.g. a UUID."}],
        )
    digest = hashlib.sha256(f"{request.method} {request.path}\n".encode())
    if request.mimetype == "multipart/form-data":
        _hash_multipart(digest)
    else:
        body = request.get_json(silent=True)
        digest.update(json.dumps(body, sort_keys=True).encode() if body is not None else request.get_data())
    return Idempotency(key, digest.hexdigest())


def _hash_multipart(digest) -> None:
    for name, value in sorted(request.form.items(multi=True)):
        digest.update(json.dumps([name, value]).encode())
    for name, upload in request.files.items(multi=True):
        digest.update(json.dumps([name, upload.filename]).encode())
        while block := upload.stream.read(_BLOCK):
            digest.update(block)
        upload.stream.seek(0)  # staged next


def idempotent(blp):
    """Documents the header and the replayed answer on a submit route."""
    from app.api import ACCEPTED_HEADERS
    from app.api.job_schemas import JobSchema
    from app.api.web_extensions import response_headers

    def decorate(view):
        view = blp.doc(
            parameters=[
                {
                    "in": "header",
                    "name": HEADER,
                    "required": False,
                    "schema": {"type": "string", "minLength": 1, "maxLength": 255},
                    "description": "Retry-safe submits: the same key with the same request within 24 h "
                    "answers 200 with the job the first request created; with another request, 409.",
                }
            ]
        )(view)
        view = blp.alt_response(
            200,
            schema=JobSchema,
            description="The job an earlier request with this Idempotency-Key created",
            headers={**ACCEPTED_HEADERS, **response_headers("Idempotent-Replayed")},
        )(view)
        view = blp.alt_response(409, description="The Idempotency-Key was used for a different request")(view)
        return blp.alt_response(422, description="Invalid fields or Idempotency-Key header")(view)

    return decorate
