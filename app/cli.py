"""`flask --app wsgi ...` commands: database migrations and index upkeep."""

from __future__ import annotations

import click
from alembic import command
from alembic.config import Config
from flask import Flask
from flask.cli import AppGroup

from app.config import PROJECT_ROOT, settings

db_cli = AppGroup("db", help="Database schema migrations (Alembic).")
index_cli = AppGroup("index", help="FAISS index upkeep.")


def alembic_config(database_url: str | None = None) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "migrations"))
    config.set_main_option(
        "sqlalchemy.url", database_url or settings.normalized_database_url()
    )
    return config


def upgrade_database(database_url: str | None = None, revision: str = "head") -> None:
    url = database_url or settings.normalized_database_url()
    if url.startswith("sqlite:///"):
        from pathlib import Path

        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
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
    command.downgrade(alembic_config(), revision)


@index_cli.command("rebuild")
@click.argument("collection")
@click.option("--tenant", default="default", show_default=True)
def index_rebuild(collection: str, tenant: str) -> None:
    """Rebuild COLLECTION's FAISS index from its chunk rows."""
    from app.extensions import db
    from app.services.collections import get_collection
    from app.services.indexing import sync_collection_index

    with db.session_scope() as session:
        collection_id = get_collection(session, tenant, collection).id
    generation = sync_collection_index(collection_id, rebuild=True)
    click.echo(f"{collection}: rebuilt, generation {generation}")


def register(app: Flask) -> None:
    app.cli.add_command(db_cli)
    app.cli.add_command(index_cli)
