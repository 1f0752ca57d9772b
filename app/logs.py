"""Logs from every process (web, worker, beat): one JSON object per line
(LOG_FORMAT=json, the default) or plain lines for people (LOG_FORMAT=text,
what `make run` uses). Each line carries the id of the request it serves, or
of the request that created the job it runs, and that job's id."""

from __future__ import annotations

import logging
import sys
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)
job_id_var: ContextVar[str | None] = ContextVar("job_id", default=None)

_TEXT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Libraries that announce routine things at INFO on every start (the
# migration runner: "Context impl SQLiteImpl.", "Will assume non-transactional DDL.").
_QUIET = ("faiss.loader", "sentence_transformers", "httpx", "alembic.runtime.plugins", "alembic.runtime.migration")


class _RequestAndJob(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = request_id_var.get()
        record.job_id = job_id_var.get()
        return True


def formatter(log_format: str) -> logging.Formatter:
    if log_format == "text":
        return logging.Formatter(_TEXT)
    return JsonFormatter(
        "{asctime}{levelname}{name}{message}{request_id}{job_id}",
        style="{",
        rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
    )


def configure(level: str, log_format: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(_RequestAndJob())
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    for name in _QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)


def gunicorn_logconfig(level: str, log_format: str) -> dict:
    """gunicorn's own lines (start, workers booting and exiting) in the same
    format as the app's. Requests are logged once, by the app (quarry.access)."""
    stderr = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "quarry",
        "filters": ["request_and_job"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_and_job": {"()": _RequestAndJob}},
        "formatters": {"quarry": {"()": formatter, "log_format": log_format}},
        "handlers": {"stderr": stderr},
        "root": {"level": level, "handlers": ["stderr"]},
        "loggers": {
            "gunicorn.error": {"level": level, "handlers": ["stderr"], "propagate": False},
            "gunicorn.access": {"level": level, "handlers": [], "propagate": False},
        },
    }
