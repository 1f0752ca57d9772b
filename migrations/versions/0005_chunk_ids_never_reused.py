"""Chunk ids are never reused on SQLite (AUTOINCREMENT), as on PostgreSQL.

A chunk id is also its vector's id in the collection's index. Without
AUTOINCREMENT, SQLite hands the id of a deleted newest row to the next
insert, and an index that still held the old vector under that id would
serve it for the new chunk.

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return  # a PostgreSQL sequence never hands out an id twice
    with op.batch_alter_table("chunks", recreate="always", table_kwargs={"sqlite_autoincrement": True}):
        pass


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    with op.batch_alter_table("chunks", recreate="always", table_kwargs={"sqlite_autoincrement": False}):
        pass
