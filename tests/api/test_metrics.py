"""/metrics is public unless METRICS_TOKEN is set; then it needs the token
(what it counts across processes: tests/integration/test_metrics.py)."""

from __future__ import annotations


def test_metrics_need_the_token_when_one_is_set(app_with):
    client = app_with(metrics_token="s3cret")
    assert client.get("/metrics", headers={"Authorization": "Bearer nope"}).status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer s3cret"}).status_code == 200


def test_metrics_are_public_without_a_token(api):
    response = api.get("/metrics", headers={"Authorization": None})
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/plain")
