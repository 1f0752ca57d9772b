"""The webhook calls both tiers' webhook tests make, through any client with
the devstack client's interface (tests/api in process, tests/integration
over HTTP)."""

from __future__ import annotations

from devstack.waiting import wait_until


def subscribe(client, url: str, events: list[str]) -> dict:
    response = client.post("/api/v1/webhooks", json={"url": url, "events": events})
    assert response.status_code == 201, response.text
    assert response.json()["secret"].startswith("whsec_")
    return response.json()


def deliveries(client, endpoint_id: str) -> list[dict]:
    return client.get(f"/api/v1/webhooks/{endpoint_id}/deliveries").json()["items"]


def settled(client, endpoint_id: str, state: str = "succeeded") -> dict:
    def latest():
        items = deliveries(client, endpoint_id)
        return items[0] if items and items[0]["state"] == state else None

    return wait_until(latest, 60, interval=0.2, what=f"a {state} delivery")
