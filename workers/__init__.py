"""The Celery app: `celery -A workers worker|beat|flower`.

Like wsgi.py for the web, importing this entry point is the Celery app's
setup: it reads the settings and binds them, with the database, Redis and
Celery's own configuration, for the process (app/runtime.py); then the tasks
(workers/tasks.py, thin wrappers around app.services), the worker's
process hooks (workers/signals.py) and its sweep timers (workers/sweeps.py)
are registered.
"""

from app import runtime
from app.config import Settings
from app.extensions import celery

runtime.configure(Settings.from_env())

from workers import signals, sweeps, tasks  # noqa: E402,F401  (register tasks and hooks)

celery.steps["worker"].add(sweeps.Sweeps)

app = celery
