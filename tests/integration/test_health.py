"""Health over HTTP against the real processes: the worker count comes from
the Celery workers that answer."""

from __future__ import annotations

import time

import pytest

from app import __version__

pytestmark = pytest.mark.integration


def test_health_endpoints_report_the_real_components(service):
    assert service.get("/health/live").status_code == 200
    ready = service.get("/health/ready")
    assert ready.status_code == 200 and ready.json()["checks"] == {"database": True, "broker": True}
    health = service.get("/health").json()
    assert health["status"] == "healthy"
    assert health["components"]["workers"]["count"] >= 1
    assert health["components"]["database"]["status"] == "up"
    assert health["components"]["redis"]["status"] == "up"
    assert health["version"] == __version__
    time.sleep(0.3)  # uptime is reported to a tenth of a second
    assert 0 < health["uptime_s"] < service.get("/health").json()["uptime_s"]
