"""Gunicorn settings for the `web` process, from the one Settings object."""

from app.config import Settings
from app.logs import gunicorn_logconfig

settings = Settings.from_env()

bind = f"{settings.web_host}:{settings.web_port}"
# gthread, except that a thread is given only to a request that has arrived,
# and a client silent for WEB_TIMEOUT mid-request is answered 408 and closed
# (slow clients: docs/operations.md).
worker_class = "app.web_worker.BufferingThreadWorker"
workers = settings.web_concurrency
threads = settings.web_threads
timeout = settings.web_timeout
graceful_timeout = 20
keepalive = 5
# Each request is logged once, by the app (quarry.access, app/api/metrics.py),
# at LOG_LEVEL and in LOG_FORMAT; gunicorn's own access log would repeat it.
accesslog = None
loglevel = settings.log_level.lower()
# gunicorn's own lines in LOG_FORMAT too (one JSON object per line by default).
logconfig_dict = gunicorn_logconfig(settings.log_level, settings.log_format)
# X-Forwarded-* are believed only through app/__init__.py's ProxyFix
# (TRUSTED_PROXY_COUNT), not by gunicorn itself.
forwarded_allow_ips = "127.0.0.1"
# gunicorn's control socket defaults to one path per user ($HOME/.gunicorn),
# which every instance on the host would take over from the others; each
# deployment keeps its own beside its data.
control_socket = str(settings.var_dir / "gunicorn.ctl")
# The request line and each header may be as long as gunicorn allows, so that
# the app sees a long query parameter or header and refuses it itself, as a
# problem+json 422 naming it (or replaces an over-long X-Request-ID); only
# what is longer still is gunicorn's own 414 or 431.
limit_request_line = 8190  # gunicorn's maximum
limit_request_field_size = 16384
