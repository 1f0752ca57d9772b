"""Dependencies point one way: api → services → search / models / config,
and workers → services. Nothing below the web layer imports Flask's request
machinery or the web layer itself."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WEB = ("flask", "flask_smorest", "flask_limiter", "app.api", "app.auth", "app.api.problems")
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
    for path in [
        *python_files("app/api"),
        ROOT / "app/__init__.py",
        ROOT / "app/auth.py",
    ]:
        handlers = {m for m in imported_modules(path) if m.startswith("app.services.handlers")}
        assert not handlers, f"{path.relative_to(ROOT)} imports {sorted(handlers)}"


IMPORT_EVERY_APP_MODULE = """
import importlib, json, os, pkgutil, sys
from pathlib import Path

def files(root):
    # Not .git (other checkouts commit meanwhile) nor .venv: the project's own files.
    return sorted(
        str(p) for p in Path(root).rglob("*")
        if "__pycache__" not in p.parts and not any(part.startswith(".") for part in p.relative_to(root).parts)
    )

watched = [os.getcwd(), os.environ["QUARRY_VAR_DIR"]]
environ, before = dict(os.environ), [files(root) for root in watched]
import app
names = [m.name for m in pkgutil.walk_packages(app.__path__, "app.")]
for name in names:
    importlib.import_module(name)
print(json.dumps({
    "modules": len(names),
    "environ": sorted(k for k in set(environ) | set(os.environ) if environ.get(k) != os.environ.get(k)),
    "files": [sorted(set(after) ^ set(old)) for after, old in zip([files(r) for r in watched], before)],
}))
"""


def test_importing_any_app_module_changes_neither_the_environment_nor_the_disk(tmp_path):
    env = {**os.environ, "QUARRY_VAR_DIR": str(tmp_path), "PYTHONDONTWRITEBYTECODE": "1"}
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", IMPORT_EVERY_APP_MODULE], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    found = json.loads(done.stdout.splitlines()[-1])
    assert found["modules"] > 50
    assert found["environ"] == []
    assert found["files"] == [[], []]
