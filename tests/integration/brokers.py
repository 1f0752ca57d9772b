"""Which broker the process tier runs on: Redis (the default) or, with
TEST_BROKER_URL, a RabbitMQ virtual host per stack (devstack/rabbitmq.py)."""

from __future__ import annotations

import os

import pytest

ON_RABBITMQ = bool(os.environ.get("TEST_BROKER_URL"))

# For the tests that stop Redis to take the broker away with it.
redis_broker_only = pytest.mark.skipif(ON_RABBITMQ, reason="Redis is not the broker on this run (TEST_BROKER_URL)")
