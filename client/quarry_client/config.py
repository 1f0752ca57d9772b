"""Where the service is and which key to use, when the caller does not say:
QUARRY_URL and QUARRY_API_KEY, else what `make run` wrote for this machine
(var/local-url and var/local-admin-key of the checkout, found from the
current folder upwards or QUARRY_VAR_DIR), else the local default port. The
local admin key goes only to that local service."""

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


def resolve(base_url: str | None = None, api_key: str | None = None) -> tuple[str, str | None]:
    """(the service's root URL, the API key). The local admin key is used
    only with the local service's URL: it never goes to another server."""
    given = base_url or os.environ.get("QUARRY_URL")
    url = _root(given or _local_file(URL_FILE) or DEFAULT_URL)
    local = given is None or url == _root(_local_file(URL_FILE) or DEFAULT_URL)
    return url, api_key or os.environ.get("QUARRY_API_KEY") or (_local_file(KEY_FILE) if local else None)


def _root(url: str) -> str:
    """A trailing /api/v1 is dropped: the client adds it."""
    return url.rstrip("/").removesuffix("/api/v1")
