"""Where the service is and which key to use, when the caller does not say:
QUARRY_URL and QUARRY_API_KEY, else what `make run` wrote for this machine
(var/local-url and var/local-admin-key of the checkout, found from the
current folder upwards or QUARRY_VAR_DIR), else the local default port."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
URL_FILE = "local-url"
KEY_FILE = "local-admin-key"


def _local_var_dir() -> Path | None:
    if os.environ.get("QUARRY_VAR_DIR"):
        return Path(os.environ["QUARRY_VAR_DIR"])
    here = Path.cwd()
    for folder in (here, *here.parents):
        if (folder / "var" / KEY_FILE).is_file():
            return folder / "var"
    return None


def _local_file(name: str) -> str | None:
    var_dir = _local_var_dir()
    try:
        return (var_dir / name).read_text().strip() or None if var_dir else None
    except OSError:
        return None


def resolve_url(base_url: str | None = None) -> str:
    """The service's root URL (a trailing /api/v1 is dropped: the client adds it)."""
    url = base_url or os.environ.get("QUARRY_URL") or _local_file(URL_FILE) or DEFAULT_URL
    url = url.rstrip("/")
    return url.removesuffix("/api/v1")


def resolve_key(api_key: str | None = None) -> str | None:
    return api_key or os.environ.get("QUARRY_API_KEY") or _local_file(KEY_FILE)
