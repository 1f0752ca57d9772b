"""Keyset pagination over (created_at, id), newest first, with opaque cursors."""

from __future__ import annotations

import base64
import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Select, and_, or_
from sqlalchemy.orm import Session

from app.models import is_row_id
from app.services.errors import ValidationFailed


def encode_cursor(created_at: datetime, row_id: str) -> str:
    raw = json.dumps([created_at.isoformat(), row_id]).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(cursor: str) -> tuple[datetime, str]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        created, row_id = json.loads(base64.urlsafe_b64decode(padded.encode()))
        if not is_row_id(row_id):
            raise ValueError(row_id)
        return datetime.fromisoformat(created), row_id
    except (ValueError, TypeError, json.JSONDecodeError):
        raise ValidationFailed(
            "The cursor is not one this API returned.",
            errors=[{"field": "cursor", "message": "Invalid cursor."}],
        ) from None


def paginate(
    session: Session, query: Select, model: Any, limit: int, cursor: str | None
) -> tuple[Sequence[Any], str | None]:
    """Rows of `query` newest first, and the cursor of the next page (or None)."""
    if cursor:
        created, row_id = decode_cursor(cursor)
        query = query.where(or_(model.created_at < created, and_(model.created_at == created, model.id < row_id)))
    rows = session.scalars(query.order_by(model.created_at.desc(), model.id.desc()).limit(limit + 1)).all()
    next_cursor = None
    if len(rows) > limit:
        rows = rows[:limit]
        next_cursor = encode_cursor(rows[-1].created_at, rows[-1].id)
    return rows, next_cursor
