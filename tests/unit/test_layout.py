"""Dependencies point one way: api → services → search / models / config,
and workers → services. Nothing below the web layer imports Flask's request
machinery or the web layer itself."""

from __future__ import annotations

import ast
import subprocess
import sys
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


def _modules_loaded_by(statement: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after `statement`."""
    probe = f"import sys\n{statement}\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}})))"
    done = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return set(done.stdout.split())


def test_the_web_process_loads_no_search_engine():
    """The web validates, writes a job row and enqueues: the model and the
    indexes live in the workers only (app/services/handlers)."""
    loaded = _modules_loaded_by("import wsgi")
    assert "flask" in loaded  # the probe itself works
    assert not loaded & {"faiss", "bm25s", "torch", "sentence_transformers"}


def test_the_web_imports_no_handler():
    for path in [*python_files("app/api"), ROOT / "app/__init__.py", ROOT / "app/auth.py", ROOT / "app/errors.py"]:
        handlers = {m for m in imported_modules(path) if m.startswith("app.services.handlers")}
        assert not handlers, f"{path.relative_to(ROOT)} imports {sorted(handlers)}"
