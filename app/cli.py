"""`flask --app wsgi ...` commands: database migrations and index upkeep."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC

import click
from flask import Flask
from flask.cli import AppGroup

from app.config import PROJECT_ROOT
from app.extensions import settings

db_cli = AppGroup("db", help="Database schema migrations (Alembic).")
index_cli = AppGroup("index", help="FAISS index upkeep.")
keys_cli = AppGroup("keys", help="API keys: create, list, revoke.")


def alembic_config(database_url: str | None = None):
    from alembic.config import Config

    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    # Migrations log like the rest of Quarry (app/logs.py), not per alembic.ini.
    config.attributes["skip_logging"] = True
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option("sqlalchemy.url", database_url or settings.normalized_database_url())
    return config


def upgrade_database(database_url: str | None = None, revision: str = "head") -> None:
    url = database_url or settings.normalized_database_url()
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    from alembic import command

    command.upgrade(alembic_config(url), revision)


@db_cli.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Bring the database schema to REVISION (default: head)."""
    upgrade_database(revision=revision)
    click.echo(f"database at {revision}")


@db_cli.command("downgrade")
@click.argument("revision")
def db_downgrade(revision: str) -> None:
    """Take the database schema back to REVISION."""
    from alembic import command

    command.downgrade(alembic_config(), revision)


@contextmanager
def _one_line_errors() -> Iterator[None]:
    """A service's refusal is one line on stderr and exit code 1."""
    from app.services.errors import ServiceError

    try:
        yield
    except ServiceError as error:
        detail = "; ".join(f"{e['field']}: {e['message']}" for e in error.errors or [])
        raise click.ClickException(detail or error.detail) from None


@index_cli.command("rebuild")
@click.argument("collection")
@click.option("--tenant", required=True, help="The tenant's name.")
def index_rebuild(collection: str, tenant: str) -> None:
    """Rebuild COLLECTION's vector and keyword indexes from its chunk rows."""
    from app.extensions import db
    from app.services.collections import get_collection
    from app.services.handlers.indexing import sync_collection_index
    from app.services.keys import find_tenant

    with db.session_scope() as session, _one_line_errors():
        owner = find_tenant(session, tenant)
        collection_id = get_collection(session, owner.id, collection).id
    generation = sync_collection_index(collection_id, rebuild=True)
    click.echo(f"{collection}: rebuilt, generation {generation}")


def _parse_expiry(value: str | None):
    """An ISO 8601 time, or a number of days from now."""
    from datetime import datetime, timedelta

    if not value:
        return None
    if value.isdigit():
        return datetime.now(UTC) + timedelta(days=int(value))
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise click.BadParameter("use an ISO 8601 time or a number of days") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


@keys_cli.command("create")
@click.option("--tenant", required=True, help="Tenant name; created if new.")
@click.option("--scopes", required=True, help="Comma-separated: read,write,admin.")
@click.option("--tier", default="free", show_default=True, type=click.Choice(["free", "pro", "enterprise"]))
@click.option("--name", default="cli", show_default=True, help="A label for the key.")
@click.option("--expires", default=None, help="ISO 8601 time, or days from now.")
def keys_create(tenant: str, scopes: str, tier: str, name: str, expires: str | None) -> None:
    """Create an API key and print it (the only time it is shown)."""
    from app.extensions import db
    from app.services import keys

    with db.session_scope() as session, _one_line_errors():
        owner = keys.ensure_tenant(session, tenant)
        key, plaintext = keys.create_key(
            session,
            owner.id,
            name=name,
            scopes=[s.strip() for s in scopes.split(",") if s.strip()],
            tier=tier,
            expires_at=_parse_expiry(expires),
        )
        click.echo(
            f"Created key {key.id} ({key.prefix}) for tenant {tenant!r}: "
            f"scopes {','.join(key.scopes)}, tier {key.tier}"
            + (f", expires {key.expires_at.isoformat()}" if key.expires_at else "")
            + ".",
            err=True,
        )
        click.echo(plaintext)


@keys_cli.command("list")
@click.option("--tenant", default=None, help="Only this tenant's keys.")
def keys_list(tenant: str | None) -> None:
    """List keys (never the secrets)."""
    from sqlalchemy import select

    from app.extensions import db
    from app.models import ApiKey, Tenant

    with db.session_scope() as session:
        query = select(ApiKey, Tenant.name).join(Tenant, ApiKey.tenant_id == Tenant.id)
        if tenant:
            query = query.where(Tenant.name == tenant)
        for key, tenant_name in session.execute(query.order_by(ApiKey.created_at)):
            state = "revoked" if key.revoked_at else "active"
            click.echo(
                f"{key.id}  {key.prefix}  {tenant_name:<16} {','.join(key.scopes):<16} "
                f"{key.tier:<10} {state:<8} {key.name}"
            )


@keys_cli.command("revoke")
@click.argument("key")
def keys_revoke(key: str) -> None:
    """Revoke KEY, given by id or prefix."""
    from app.extensions import db
    from app.services import keys

    with db.session_scope() as session, _one_line_errors():
        found = keys.find_key(session, key)
        keys.revoke_key(session, found.tenant_id, found.id)
        click.echo(f"revoked {found.id} ({found.prefix})")


def register(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(index_cli)
    app.cli.add_command(keys_cli)
