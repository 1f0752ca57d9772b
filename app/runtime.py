"""Binds the shared runtime of app/extensions.py for one process, in this
order: the settings every service reads, where metrics are written, the
database (with the guard that every job status change goes through
transition()), Redis, and the Celery app (so the web can send tasks and
workers run them). create_app(settings) calls it for the web; the Celery app's setup
(workers/__init__.py) for workers, beat and Flower."""

from __future__ import annotations

from app import metrics
from app.celery_config import celery_config
from app.config import Settings
from app.extensions import bind_settings, celery, db, redis_store
from app.services.jobs.transitions import install_status_guard


def configure(settings: Settings) -> None:
    bind_settings(settings)
    metrics.configure(settings.metrics_dir)
    db.configure(settings.normalized_database_url())
    install_status_guard(db.factory)
    redis_store.configure(settings.redis_url)
    celery.conf.update(celery_config(settings))
