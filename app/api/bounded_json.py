"""JSON from clients, parsed with a bound on nesting. Python's parser recurses
once per level, so a body nested thousands of levels deep would otherwise
end in RecursionError (a 500) here or in any code that walks the value.
Nothing Quarry accepts nests deeper than a few levels."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from flask.json.provider import DefaultJSONProvider

from app.services.errors import ValidationFailed

MAX_DEPTH = 32
# A run of openings deeper than the bound, and the last key before it (where
# the parser gave up, its own recursion limit reached, the value is unknown).
_DEEP_RUN = re.compile(r"[\[{](?:\s*[\[{]){" + str(MAX_DEPTH) + "}")
_KEY = re.compile(r'"([^"\\]{1,128})"\s*:')


class TooDeep(ValueError):
    """The JSON nests deeper than MAX_DEPTH; `path` names where (dotted, as
    field errors are), empty when even the parser could not get that far."""

    def __init__(self, path: str) -> None:
        self.path = path
        where = f" at `{path}`" if path else ""
        super().__init__(f"The JSON is nested more than {MAX_DEPTH} levels deep{where}.")


def loads(data: str | bytes) -> Any:
    """json.loads, raising TooDeep past MAX_DEPTH (and ValueError as it does)."""
    return bounded(lambda: json.loads(data), data)


def bounded(parse: Callable[[], Any], data: str | bytes) -> Any:
    """What parse() returns for `data`, or TooDeep: the parser recursed too
    deep, or the value nests past MAX_DEPTH."""
    try:
        value = parse()
    except RecursionError:
        raise TooDeep(_key_before_deep_run(data)) from None
    path = too_deep_at(value)
    if path is not None:
        raise TooDeep(path)
    return value


def _key_before_deep_run(data: str | bytes) -> str:
    text = data.decode("utf-8", "replace") if isinstance(data, bytes) else data
    run = _DEEP_RUN.search(text)
    if run is None:
        return ""
    keys = _KEY.findall(text, max(0, run.start() - 1024), run.start())
    return keys[-1] if keys else ""


def too_deep_at(value: Any) -> str | None:
    """The dotted path of the first container nested past MAX_DEPTH, or None.
    Walks with a stack of its own, so any depth the parser returned is safe."""
    pending: list[tuple[Any, tuple[str, ...]]] = [(value, ())]
    while pending:
        item, path = pending.pop()
        if isinstance(item, dict):
            children = [(child, (*path, str(key))) for key, child in item.items()]
        elif isinstance(item, list):
            children = [(child, (*path, str(position))) for position, child in enumerate(item)]
        else:
            continue
        if len(path) >= MAX_DEPTH:
            return _field_of(path)
        pending.extend(children)
    return None


def _field_of(path: tuple[str, ...]) -> str:
    """The field a deep path is in: its keys down to the last named one
    (`metadata`, not `metadata.0.0.0…`), at most a few of them."""
    named = [position for position, part in enumerate(path) if not part.isdigit()]
    end = named[-1] + 1 if named else 0
    return ".".join(path[: min(end, 6)])


def as_problem(exc: TooDeep, field: str = "") -> ValidationFailed:
    """The 422 a client gets, naming the field (`field`, if the parser could
    not tell, or the body when neither knows)."""
    named = exc.path or field
    return ValidationFailed(str(exc), errors=[{"field": named or "body", "message": str(exc)}])


class BoundedJSONProvider(DefaultJSONProvider):
    """Flask's JSON, with request bodies read by `loads` above
    (`request.get_json()` answers a body too deep as BoundedRequest says)."""

    def loads(self, s: str | bytes, **kwargs: Any) -> Any:
        return loads(s)
