from __future__ import annotations

from app.api import API_PREFIX
from app.api.schemas import KeyCreateSchema, KeyPageSchema, ListArgsSchema, NewKeySchema
from app.api.web_extensions import Blueprint
from app.auth import current_tenant_id
from app.extensions import db, settings
from app.services import keys

blp = Blueprint("keys", __name__, url_prefix=f"{API_PREFIX}/keys", description="API keys (scope `admin`)")


def _with_secret(key, plaintext: str):
    key.key = plaintext  # for this one response only; never stored
    return key


@blp.route("", methods=["POST"])
@blp.doc(operationId="create_key")
@blp.arguments(KeyCreateSchema)
@blp.response(201, NewKeySchema)
def create_key(body: dict):
    """Create a key in the caller's tenant.

    The secret `key` is shown only in this answer; only its hash is stored.
    `scopes` are read, write and admin; `tier` sets the rate limits.
    """
    key, plaintext = keys.create_key(db.session, current_tenant_id(), **body)
    return _with_secret(key, plaintext)


@blp.route("", methods=["GET"])
@blp.doc(operationId="list_keys")
@blp.arguments(ListArgsSchema, location="query", as_kwargs=True)
@blp.response(200, KeyPageSchema)
def list_keys(limit: int, cursor: str | None):
    """List the tenant's keys, newest first.

    Each with its visible prefix, scopes, tier and dates; never the secret.
    """
    items, next_cursor = keys.list_keys(db.session, current_tenant_id(), limit=limit, cursor=cursor)
    return {"items": items, "next_cursor": next_cursor}


@blp.route("/<key_id>", methods=["DELETE"])
@blp.doc(operationId="revoke_key")
@blp.response(204)
@blp.alt_response(404, description="No such key")
def revoke_key(key_id: str):
    """Revoke a key.

    It stops working at once; it stays in the list, marked revoked.
    """
    keys.revoke_key(db.session, current_tenant_id(), key_id)


@blp.route("/<key_id>/rotate", methods=["POST"])
@blp.doc(operationId="rotate_key")
@blp.response(201, NewKeySchema)
@blp.alt_response(404, description="No such key")
@blp.alt_response(409, description="The key is revoked or expired")
def rotate_key(key_id: str):
    """Replace a key.

    The new key, with the same name, scopes and tier, is shown only in this
    answer. The old one keeps working for KEY_ROTATION_GRACE_SECONDS.
    """
    key, plaintext = keys.rotate_key(db.session, current_tenant_id(), key_id, settings.key_rotation_grace_seconds)
    return _with_secret(key, plaintext)
