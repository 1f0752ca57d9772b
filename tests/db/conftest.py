"""The database tier: services called in this process against the real
database and Redis, jobs run by calling the runner."""

from __future__ import annotations

import pytest

from tests.api.inprocess import discard_queued


@pytest.fixture(autouse=True)
def nothing_left_queued(runtime):
    """What a test here sends and does not run itself is dropped after it.
    The in-process tier's inline worker reads the same Redis database, and
    would otherwise run this tier's leftover jobs inside another test's poll
    (one poll took 14 s so, in a suite run with pytest-xdist)."""
    yield
    discard_queued()
