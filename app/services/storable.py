"""What the databases store faithfully, and what they refuse.

PostgreSQL refuses NUL in any text column, strings with unpaired UTF-16
surrogates have no UTF-8 encoding at all, and NaN or Infinity is no JSON
number (Python's json reads and writes them; a `json` column refuses them).
SQLite stores all three, so the rule is checked here rather than left to the
database: one document is refused alike on both, and alone.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from pathlib import PurePosixPath
from typing import Any

_UNSTORABLE_CHARACTERS = re.compile("[\x00\ud800-\udfff]")
# Control characters, besides those above: no filename needs them.
_UNSAFE_IN_NAMES = re.compile("[\x00-\x1f\x7f\ud800-\udfff]")

UNSTORABLE_TEXT = "Must not contain NUL characters or unpaired surrogates."
NOT_FINITE = "Must be a finite number (JSON has no NaN or Infinity)."


def unstorable_values(value: Any, path: tuple = ()) -> list[tuple[tuple, str]]:
    """(path, message) for every string (key or value) anywhere in `value`
    holding a NUL or an unpaired surrogate, and every number that is not finite."""
    if isinstance(value, str):
        return [(path, UNSTORABLE_TEXT)] if _UNSTORABLE_CHARACTERS.search(value) else []
    if isinstance(value, float):
        return [] if math.isfinite(value) else [(path, NOT_FINITE)]
    found = []
    if isinstance(value, Mapping):
        for key, item in value.items():
            found += unstorable_values(key, path + (key,)) if isinstance(key, str) else []
            found += unstorable_values(item, path + (key,))
    elif isinstance(value, (list, tuple)):
        for position, item in enumerate(value):
            found += unstorable_values(item, path + (position,))
    return found


def storable_text(text: str) -> str:
    """`text` with every character no database stores as U+FFFD, for reports
    that must be storable themselves (a job's `failed` entries)."""
    return _UNSTORABLE_CHARACTERS.sub("\ufffd", text)


def clean_filename(filename: str) -> str:
    """The last part of an uploaded file's name, control characters and
    unpaired surrogates replaced by '_': the name becomes a document id and
    metadata, so it must be storable, and a browser would do the same."""
    return _UNSAFE_IN_NAMES.sub("_", PurePosixPath(filename).name)
