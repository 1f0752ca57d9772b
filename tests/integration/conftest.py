"""Fixtures the integration modules share (the stack itself: tests/conftest.py)."""

from __future__ import annotations

import pytest

from tests.integration.corpora import unique


@pytest.fixture(scope="module")
def collection(service):
    """An empty collection of the shared stack's tenant, one per module."""
    name = unique("empty")
    assert service.post("/api/v1/collections", json={"name": name}).status_code == 201
    return name
