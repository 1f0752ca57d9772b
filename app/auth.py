"""Who is calling. Until API keys exist every request acts for the default
tenant; blueprints ask here rather than assuming, so keys slot in later."""

from __future__ import annotations

from app.models import DEFAULT_TENANT


def current_tenant_id() -> str:
    return DEFAULT_TENANT
