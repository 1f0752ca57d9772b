from __future__ import annotations

from app.api import API_PREFIX
from app.api.extensions import Blueprint
from app.api.schemas import ListArgsSchema
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
    "webhooks", __name__, url_prefix=f"{API_PREFIX}/webhooks",
    description="Signed callbacks for job events (Standard Webhooks)",
)


@blp.route("", methods=["POST"])
@blp.arguments(EndpointCreateSchema)
@blp.response(201, EndpointWithSecretSchema)
def create_endpoint(body: dict):
    """Subscribe a URL to job events. The signing `secret` is shown only here."""
    # EndpointWithSecretSchema shows the secret, this once.
    return endpoints.create_endpoint(db.session, current_tenant_id(), **body)


@blp.route("", methods=["GET"])
@blp.arguments(ListArgsSchema, location="query", as_kwargs=True)
@blp.response(200, EndpointPageSchema)
def list_endpoints(limit: int, cursor: str | None):
    """List the tenant's endpoints, newest first."""
    items, next_cursor = endpoints.list_endpoints(db.session, current_tenant_id(), limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/secret", methods=["GET"])
@blp.response(200, TenantSecretSchema)
def tenant_secret():
    """The secret that signs deliveries to a job's own `callback_url`."""
    return {"secret": endpoints.tenant_secret(db.session, current_tenant_id())}


@blp.route("/<endpoint_id>", methods=["GET"])
@blp.response(200, EndpointSchema)
@blp.alt_response(404, description="No such endpoint")
def get_endpoint(endpoint_id: str):
    """Read an endpoint (never its secret)."""
    return endpoints.get_endpoint(db.session, current_tenant_id(), endpoint_id)


@blp.route("/<endpoint_id>", methods=["PATCH"])
@blp.arguments(EndpointUpdateSchema)
@blp.response(200, EndpointSchema)
@blp.alt_response(404, description="No such endpoint")
def update_endpoint(body: dict, endpoint_id: str):
    """Change an endpoint's `url`, `events`, `description` or `active`."""
    return endpoints.update_endpoint(db.session, current_tenant_id(), endpoint_id, body)


@blp.route("/<endpoint_id>", methods=["DELETE"])
@blp.response(204)
@blp.alt_response(404, description="No such endpoint")
def delete_endpoint(endpoint_id: str):
    """Delete an endpoint and its delivery history."""
    endpoints.delete_endpoint(db.session, current_tenant_id(), endpoint_id)


@blp.route("/<endpoint_id>/rotate-secret", methods=["POST"])
@blp.response(200, EndpointWithSecretSchema)
@blp.alt_response(404, description="No such endpoint")
def rotate_secret(endpoint_id: str):
    """A new secret. The old one keeps signing beside it (two `v1,` signatures)
    for WEBHOOK_SECRET_GRACE_SECONDS, so receivers can roll over."""
    return endpoints.rotate_secret(db.session, current_tenant_id(), endpoint_id)


@blp.route("/<endpoint_id>/test", methods=["POST"])
@blp.response(202, DeliverySchema)
@blp.alt_response(404, description="No such endpoint")
@blp.alt_response(409, description="The endpoint is disabled")
def send_test(endpoint_id: str):
    """Send a `ping` event to the endpoint."""
    return endpoints.send_test(db.session, current_tenant_id(), endpoint_id)


@blp.route("/<endpoint_id>/deliveries", methods=["GET"])
@blp.arguments(ListArgsSchema, location="query", as_kwargs=True)
@blp.response(200, DeliveryPageSchema)
@blp.alt_response(404, description="No such endpoint")
def list_deliveries(limit: int, cursor: str | None, endpoint_id: str):
    """The endpoint's deliveries, newest first, each with its attempts."""
    items, next_cursor = endpoints.list_deliveries(
        db.session, current_tenant_id(), endpoint_id, limit=limit, cursor=cursor
    )
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/<endpoint_id>/deliveries/<delivery_id>/redeliver", methods=["POST"])
@blp.response(202, DeliverySchema)
@blp.alt_response(404, description="No such endpoint or delivery")
@blp.alt_response(409, description="The endpoint is disabled")
def redeliver(endpoint_id: str, delivery_id: str):
    """Send a delivery again, with the same `webhook-id`."""
    return endpoints.redeliver(db.session, current_tenant_id(), endpoint_id, delivery_id)
