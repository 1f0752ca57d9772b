"""Dependencies point one way: api → services → search / models / config,
and workers → services. Nothing below the web layer imports Flask's request
machinery or the web layer itself."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ("flask", "flask_smorest", "flask_limiter", "app.api", "app.auth", "app.errors")
BELOW_THE_WEB = ["app/services", "app/search", "app/models.py", "app/config.py", "app/extensions.py", "workers"]


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def python_files(relative: str) -> list[Path]:
    path = ROOT / relative
    files = [path] if path.is_file() else sorted(path.rglob("*.py"))
    assert files, relative
    return files


@pytest.mark.parametrize("relative", BELOW_THE_WEB)
def test_nothing_below_the_web_layer_imports_it(relative):
    for path in python_files(relative):
        upward = {m for m in imported_modules(path) if m.startswith(WEB)}
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"


def test_the_search_core_knows_nothing_of_services_or_storage():
    for path in python_files("app/search"):
        upward = {m for m in imported_modules(path) if m.startswith(("app.services", "app.models", "app.extensions"))}
        assert not upward, f"{path.relative_to(ROOT)} imports {sorted(upward)}"
