"""Which files an upload of paths sends: each file named, and the files of
each folder named, recursively."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path

# What the service ingests; it refuses anything else with 415.
SUPPORTED = (".txt", ".text", ".md", ".markdown", ".html", ".htm", ".pdf", ".docx", ".json", ".jsonl")


def files_under(paths: Iterable[str | Path]) -> Iterator[Path]:
    """Each file named, and every file in each folder named (recursively, in
    name order, leaving out hidden files and folders)."""
    for path in map(Path, paths):
        if path.is_dir():
            for child in sorted(path.rglob("*")):
                if child.is_file() and not any(part.startswith(".") for part in child.relative_to(path).parts):
                    yield child
        else:
            yield path


def is_supported(path: Path) -> bool:
    return path.suffix.lower() in SUPPORTED
