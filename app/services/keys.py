"""API keys and tenants.

A key looks like `qk_<12 hex>_<43 url-safe chars>`: the first part is the
visible prefix (stored, shown in lists, greppable in a leak), the rest is
256 bits of randomness. Only the SHA-256 of the whole key is stored; a key is
looked up by prefix and compared to the hash in constant time. SHA-256 rather
than a slow password hash is enough because the secret is random, not chosen.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from cachetools import TTLCache
from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError, OperationalError
from sqlalchemy.orm import Session

from app.models import ApiKey, Tenant, is_row_id, utcnow
from app.services.errors import Conflict, NotFound, Unauthorized, ValidationFailed
from app.services.pagination import paginate

log = logging.getLogger(__name__)

SCOPES = ("read", "write", "admin")
TIERS = ("free", "pro", "enterprise")
_KEY_RE = re.compile(r"^(qk_[0-9a-f]{12})_[A-Za-z0-9_-]{43}\Z")
_PREFIX_RE = re.compile(r"qk_[0-9a-f]{12}")
_LAST_USED_EVERY = 60.0  # seconds between last_used_at writes per key and process
# A key that was valid a moment ago is believed for this long without a
# database read, per process: a revoked key stops working within a second.
AUTH_CACHE_SECONDS = 1.0


@dataclass(frozen=True)
class Principal:
    """Who a request acts for: the key's tenant, scopes and tier."""

    tenant_id: str
    key_id: str
    scopes: frozenset[str]
    tier: str


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def _new_secret() -> tuple[str, str]:
    prefix = "qk_" + secrets.token_hex(6)
    return prefix, f"{prefix}_{secrets.token_urlsafe(32)}"


# --- tenants ------------------------------------------------------------------


def ensure_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalars(select(Tenant).where(Tenant.name == name)).first()
    if tenant is not None:
        return tenant
    tenant = Tenant(name=name)
    session.add(tenant)
    try:
        session.commit()
    except IntegrityError:
        session.rollback()
        return session.scalars(select(Tenant).where(Tenant.name == name)).one()
    return tenant


def find_tenant(session: Session, name: str) -> Tenant:
    tenant = session.scalars(select(Tenant).where(Tenant.name == name)).first()
    if tenant is None:
        raise NotFound(f"No tenant named {name!r}.")
    return tenant


# --- keys ---------------------------------------------------------------------


def _validate(scopes: list[str], tier: str, expires_at: datetime | None) -> None:
    errors = []
    unknown = sorted(set(scopes) - set(SCOPES))
    if not scopes or unknown:
        errors.append({"field": "scopes", "message": f"Choose one or more of: {', '.join(SCOPES)}."})
    if tier not in TIERS:
        errors.append({"field": "tier", "message": f"Must be one of: {', '.join(TIERS)}."})
    if expires_at is not None and expires_at <= utcnow():
        errors.append({"field": "expires_at", "message": "Must be in the future."})
    if errors:
        raise ValidationFailed("The key request has invalid fields.", errors=errors)


def create_key(
    session: Session,
    tenant_id: str,
    *,
    name: str,
    scopes: list[str],
    tier: str = "free",
    expires_at: datetime | None = None,
    rotated_from_id: str | None = None,
) -> tuple[ApiKey, str]:
    """A new key and its plaintext, which is never stored or shown again."""
    _validate(scopes, tier, expires_at)
    prefix, plaintext = _new_secret()
    key = ApiKey(
        tenant_id=tenant_id,
        name=name,
        prefix=prefix,
        key_hash=hash_key(plaintext),
        scopes=sorted(set(scopes), key=SCOPES.index),
        tier=tier,
        expires_at=expires_at,
        rotated_from_id=rotated_from_id,
    )
    session.add(key)
    session.commit()
    return key, plaintext


@dataclass(frozen=True)
class _Verified:
    principal: Principal
    expires_at: datetime | None


_verified: TTLCache[str, _Verified] = TTLCache(maxsize=4096, ttl=AUTH_CACHE_SECONDS)
_verified_lock = threading.Lock()


def authenticate(session: Session, presented: str | None) -> Principal:
    """The principal for a presented key, or Unauthorized saying why."""
    if not presented:
        raise Unauthorized("No API key. Send `Authorization: Bearer <key>` or `X-API-Key: <key>`.")
    match = _KEY_RE.match(presented)
    if match is None:
        raise Unauthorized("The API key is malformed.")
    digest = hash_key(presented)
    now = utcnow()
    with _verified_lock:
        verified = _verified.get(digest)
    if verified is None:
        verified = _verify(session, match.group(1), digest, now)
        with _verified_lock:
            _verified[digest] = verified
    if verified.expires_at is not None and verified.expires_at <= now:
        raise Unauthorized("The API key has expired.")
    _note_use(session, verified.principal.key_id, now)
    return verified.principal


def _verify(session: Session, prefix: str, digest: str, now: datetime) -> _Verified:
    key = session.scalars(select(ApiKey).where(ApiKey.prefix == prefix)).first()
    # Compare against a dummy hash when the prefix is unknown, so an unknown
    # key costs the same as a wrong one.
    stored = key.key_hash if key is not None else hash_key("")
    if not hmac.compare_digest(stored, digest) or key is None:
        raise Unauthorized("The API key is not valid.")
    if key.revoked_at is not None:
        raise Unauthorized("The API key has been revoked.")
    if key.expires_at is not None and key.expires_at <= now:
        raise Unauthorized("The API key has expired.")
    return _Verified(Principal(key.tenant_id, key.id, frozenset(key.scopes or ()), key.tier), key.expires_at)


def _forget_verified_keys() -> None:
    """This process believes no key from memory after a revocation or rotation
    (the others stop within AUTH_CACHE_SECONDS)."""
    with _verified_lock:
        _verified.clear()


_last_written: dict[str, float] = {}
_last_written_lock = threading.Lock()


def _note_use(session: Session, key_id: str, now: datetime) -> None:
    """Record last use at most once a minute per key and process, so a busy
    key does not turn every request into a database write."""
    moment = time.monotonic()
    with _last_written_lock:
        if moment - _last_written.get(key_id, -_LAST_USED_EVERY) < _LAST_USED_EVERY:
            return
        _last_written[key_id] = moment
    try:
        session.execute(update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=now))
        session.commit()
    except OperationalError as exc:  # bookkeeping must never fail the request
        session.rollback()
        log.warning("could not record last use of key %s: %s", key_id, exc)


def list_keys(session: Session, tenant_id: str, *, limit: int, cursor: str | None):
    return paginate(session, select(ApiKey).where(ApiKey.tenant_id == tenant_id), ApiKey, limit, cursor)


def get_key(session: Session, tenant_id: str, key_id: str) -> ApiKey:
    key = session.get(ApiKey, key_id) if is_row_id(key_id) else None
    if key is None or key.tenant_id != tenant_id:
        raise NotFound(f"No API key with id {key_id!r}.")
    return key


def revoke_key(session: Session, tenant_id: str, key_id: str) -> None:
    key = get_key(session, tenant_id, key_id)
    if key.revoked_at is None:
        key.revoked_at = utcnow()
        session.commit()
    _forget_verified_keys()


def rotate_key(session: Session, tenant_id: str, key_id: str, grace_seconds: int) -> tuple[ApiKey, str]:
    """A new key with the same name, scopes, tier and expiry; the old one keeps
    working for `grace_seconds`, then stops."""
    old = get_key(session, tenant_id, key_id)
    now = utcnow()
    if old.revoked_at is not None or (old.expires_at is not None and old.expires_at <= now):
        raise Conflict("A revoked or expired key cannot be rotated; create a new one.")
    new, plaintext = create_key(
        session,
        tenant_id,
        name=old.name,
        scopes=list(old.scopes),
        tier=old.tier,
        expires_at=old.expires_at,
        rotated_from_id=old.id,
    )
    grace_end = now + timedelta(seconds=grace_seconds)
    if old.expires_at is None or old.expires_at > grace_end:
        old.expires_at = grace_end
    session.commit()
    _forget_verified_keys()
    return new, plaintext


def find_key(session: Session, id_or_prefix: str) -> ApiKey:
    """By id or visible prefix, across tenants: for the operator's CLI."""
    key = None
    if is_row_id(id_or_prefix):
        key = session.get(ApiKey, id_or_prefix)
    elif _PREFIX_RE.fullmatch(id_or_prefix):
        key = session.scalars(select(ApiKey).where(ApiKey.prefix == id_or_prefix)).first()
    if key is None:
        raise NotFound(f"No API key with id or prefix {id_or_prefix!r}.")
    return key
