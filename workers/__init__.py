"""The Celery app: `celery -A workers worker|beat|flower`.

Tasks are thin wrappers around app.services; see workers/tasks.py.
"""

from app.config import settings
from app.extensions import celery, init_runtime

init_runtime(settings.normalized_database_url(), settings.redis_url)

from workers import signals, tasks  # noqa: E402,F401  (register tasks and hooks)

app = celery
