"""The `quarry` command: the API from a shell (see base.py for the exit
statuses). The subcommands live in data.py (collections, documents, upload,
search, jobs) and admin.py (webhooks, listen, keys, health)."""

from quarry_client.cli import admin, data
from quarry_client.cli.base import main

__all__ = ["admin", "data", "main"]
