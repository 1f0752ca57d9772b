from __future__ import annotations

from app.api import API_PREFIX
from app.api.schemas import ListArgsSchema
from app.api.web_extensions import Blueprint
from app.api.webhook_schemas import (
    DeliveryPageSchema,
    DeliverySchema,
    EndpointCreateSchema,
    EndpointPageSchema,
    EndpointSchema,
    EndpointUpdateSchema,
    EndpointWithSecretSchema,
    TenantSecretSchema,
)
from app.auth import current_tenant_id
from app.extensions import db
from app.services.webhooks import endpoints

blp = Blueprint(
    "webhooks",
    __name__,
    url_prefix=f"{API_PREFIX}/webhooks",
    description="Signed callbacks for job events (Standard Webhooks)",
)


@blp.route("", methods=["POST"])
@blp.doc(operationId="create_webhook")
@blp.arguments(EndpointCreateSchema)
@blp.response(201, EndpointWithSecretSchema)
def create_endpoint(body: dict):
    """Subscribe a URL to job events.

    Deliveries are signed per the Standard Webhooks spec with the endpoint's
    `secret` (`whsec_…`), shown only in this answer.
    """
    # EndpointWithSecretSchema shows the secret, this once.
    return endpoints.create_endpoint(db.session, current_tenant_id(), **body)


@blp.route("", methods=["GET"])
@blp.doc(operationId="list_webhooks")
@blp.arguments(ListArgsSchema, location="query", as_kwargs=True)
@blp.response(200, EndpointPageSchema)
def list_endpoints(limit: int, cursor: str | None):
    """List the tenant's endpoints, newest first.

    Never their secrets. A disabled endpoint reads `active: false` with a
    `disabled_reason`.
    """
    items, next_cursor = endpoints.list_endpoints(db.session, current_tenant_id(), limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/secret", methods=["GET"])
@blp.doc(operationId="get_webhook_signing_secret")
@blp.response(200, TenantSecretSchema)
def tenant_secret():
    """The secret that signs deliveries to a job's own `callback_url`.

    One per tenant; endpoints made with POST /api/v1/webhooks have their own.
    """
    return {"secret": endpoints.tenant_secret(db.session, current_tenant_id())}


@blp.route("/<endpoint_id>", methods=["GET"])
@blp.doc(operationId="get_webhook")
@blp.response(200, EndpointSchema)
@blp.alt_response(404, description="No such endpoint")
def get_endpoint(endpoint_id: str):
    """Read an endpoint.

    Its URL, events and state; never its secret.
    """
    return endpoints.get_endpoint(db.session, current_tenant_id(), endpoint_id)


@blp.route("/<endpoint_id>", methods=["PATCH"])
@blp.doc(operationId="update_webhook")
@blp.arguments(EndpointUpdateSchema)
@blp.response(200, EndpointSchema)
@blp.alt_response(404, description="No such endpoint")
def update_endpoint(body: dict, endpoint_id: str):
    """Change an endpoint's `url`, `events`, `description` or `active`.

    Fields left out keep their values; `active: true` re-enables a disabled endpoint.
    """
    return endpoints.update_endpoint(db.session, current_tenant_id(), endpoint_id, body)


@blp.route("/<endpoint_id>", methods=["DELETE"])
@blp.doc(operationId="delete_webhook")
@blp.response(204)
@blp.alt_response(404, description="No such endpoint")
def delete_endpoint(endpoint_id: str):
    """Delete an endpoint and its delivery history.

    Events that happen after this are not sent to its URL.
    """
    endpoints.delete_endpoint(db.session, current_tenant_id(), endpoint_id)


@blp.route("/<endpoint_id>/rotate-secret", methods=["POST"])
@blp.doc(operationId="rotate_webhook_secret")
@blp.response(200, EndpointWithSecretSchema)
@blp.alt_response(404, description="No such endpoint")
def rotate_secret(endpoint_id: str):
    """Give an endpoint a new secret.

    The old one keeps signing beside it (two `v1,` signatures) for
    WEBHOOK_SECRET_GRACE_SECONDS, so receivers can roll over.
    """
    return endpoints.rotate_secret(db.session, current_tenant_id(), endpoint_id)


@blp.route("/<endpoint_id>/test", methods=["POST"])
@blp.doc(operationId="test_webhook")
@blp.response(202, DeliverySchema)
@blp.alt_response(404, description="No such endpoint")
@blp.alt_response(409, description="The endpoint is disabled")
def send_test(endpoint_id: str):
    """Send a `ping` event to the endpoint.

    Answers at once with the delivery; follow it in the endpoint's deliveries.
    """
    return endpoints.send_test(db.session, current_tenant_id(), endpoint_id)


@blp.route("/<endpoint_id>/deliveries", methods=["GET"])
@blp.doc(operationId="list_webhook_deliveries")
@blp.arguments(ListArgsSchema, location="query", as_kwargs=True)
@blp.response(200, DeliveryPageSchema)
@blp.alt_response(404, description="No such endpoint")
def list_deliveries(limit: int, cursor: str | None, endpoint_id: str):
    """List the endpoint's deliveries, newest first.

    Each with its state, attempt count, last status code and error, next
    attempt, and the history of its attempts.
    """
    items, next_cursor = endpoints.list_deliveries(
        db.session, current_tenant_id(), endpoint_id, limit=limit, cursor=cursor
    )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/<endpoint_id>/deliveries/<delivery_id>/redeliver", methods=["POST"])
@blp.doc(operationId="redeliver_webhook_delivery")
@blp.response(202, DeliverySchema)
@blp.alt_response(404, description="No such endpoint or delivery")
@blp.alt_response(409, description="The endpoint is disabled")
def redeliver(endpoint_id: str, delivery_id: str):
    """Send a delivery again.

    With the same `webhook-id`, so a receiver that already handled it can tell.
    """
    return endpoints.redeliver(db.session, current_tenant_id(), endpoint_id, delivery_id)
