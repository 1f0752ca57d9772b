"""Request and response schemas of the webhooks API."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields, validate

from app.api.schemas import StrictSchema, page_schema
from app.services.webhooks.events import ALL_EVENTS, EVENT_TYPES

EVENT_CHOICES = [*EVENT_TYPES, ALL_EVENTS]


def event_list(**kwargs) -> fields.List:
    return fields.List(
        fields.String(validate=validate.OneOf(EVENT_CHOICES, error="Event type must be one of: {choices}.")),
        validate=validate.Length(min=1),
        metadata={"description": "Event types to receive; `*` for all"},
        **kwargs,
    )


class EndpointCreateSchema(StrictSchema):
    url = fields.String(required=True, validate=validate.Length(min=1, max=2048))
    events = event_list(required=True)
    description = fields.String(validate=validate.Length(max=2000), allow_none=True)


class EndpointUpdateSchema(StrictSchema):
    url = fields.String(validate=validate.Length(min=1, max=2048))
    events = event_list()
    description = fields.String(validate=validate.Length(max=2000), allow_none=True)
    active = fields.Boolean(metadata={"description": "false stops deliveries; true re-enables a disabled endpoint"})


class EndpointSchema(ma.Schema):
    """An endpoint as listed: never its secret."""

    id = fields.String()
    url = fields.String()
    description = fields.String(allow_none=True)
    events = fields.List(fields.String())
    active = fields.Boolean()
    disabled_reason = fields.String(allow_none=True)
    created_at = fields.DateTime()
    updated_at = fields.DateTime()


class EndpointWithSecretSchema(EndpointSchema):
    secret = fields.String(metadata={"description": "Signing secret (`whsec_…`). Shown only in this response."})


class DeliverySchema(ma.Schema):
    id = fields.String()
    event_id = fields.String(metadata={"description": "The webhook-id header: the same on every attempt"})
    event = fields.String(attribute="event_type")
    job_id = fields.String(allow_none=True)
    state = fields.String(metadata={"enum": ["pending", "succeeded", "failed"]})
    attempts = fields.Integer()
    last_status_code = fields.Integer(allow_none=True)
    last_error = fields.String(allow_none=True)
    next_attempt_at = fields.DateTime(allow_none=True)
    created_at = fields.DateTime()
    attempt_log = fields.List(
        fields.Dict(),
        data_key="attempt_history",
        metadata={"description": "Each attempt: at, status_code, latency_ms, response (first 1 KB), error"},
    )


class TenantSecretSchema(ma.Schema):
    secret = fields.String(metadata={"description": "Signs deliveries to per-job callback_urls"})


EndpointPageSchema = page_schema(EndpointSchema, "WebhookEndpointPage")
DeliveryPageSchema = page_schema(DeliverySchema, "WebhookDeliveryPage")
