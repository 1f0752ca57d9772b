"""How the CLI prints: rich tables for people, JSON (`--json`) for scripts,
and errors as one line on stderr with the problem's detail and request id."""

from __future__ import annotations

import dataclasses
import json
import sys
from collections.abc import Iterable, Sequence
from typing import Any

import click
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from quarry_client.models import Model

# No emoji codes: a ":fire:" in a document's text stays as it is.
out = Console(soft_wrap=True, emoji=False)
err = Console(stderr=True, soft_wrap=True, emoji=False)


def as_data(value: Any) -> Any:
    """JSON-ready data: a model as the JSON the service sent."""
    if isinstance(value, Model):
        return value.raw
    if isinstance(value, list | tuple):
        return [as_data(v) for v in value]
    if isinstance(value, dict):
        return {key: as_data(v) for key, v in value.items()}
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return dataclasses.asdict(value)
    return value


def emit_json(value: Any) -> None:
    click.echo(json.dumps(as_data(value), indent=2, default=str))


def table(rows: Iterable[Sequence[Any]], columns: Sequence[str], title: str | None = None) -> None:
    grid = Table(title=title, title_justify="left")
    for column in columns:
        # Ids and names wrap rather than lose their ends to an ellipsis.
        grid.add_column(column, overflow="fold")
    for row in rows:
        # Text, not markup: a hit's text may hold [brackets] of its own.
        grid.add_row(*(Text("" if cell is None else str(cell)) for cell in row))
    out.print(grid)


def fields(value: Model, names: Sequence[str]) -> None:
    """One object as `name: value` lines."""
    data = value.raw
    width = max(len(n) for n in names)
    for name in names:
        if name in data:
            cell = data[name]
            shown = json.dumps(cell) if isinstance(cell, dict | list) else cell
            out.print(f"[bold]{name.ljust(width)}[/bold]  {escape(str(shown))}", highlight=False)


def note(message: str) -> None:
    """A line for the person on stderr (markup allowed: escape what you insert)."""
    err.print(message, highlight=False)


def say(message: str) -> None:
    """A plain line on stdout, printed as it is."""
    out.print(message, markup=False, highlight=False)


def when(timestamp: str | None) -> str:
    """An ISO 8601 time as a table shows it: to the second, in UTC."""
    return timestamp[:19].replace("T", " ") if timestamp else ""


def shorten(text: str, width: int = 90) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 1] + "…"


def fail(message: str, code: int) -> None:
    err.print(f"[red]error:[/red] {escape(message)}", highlight=False)
    sys.exit(code)
