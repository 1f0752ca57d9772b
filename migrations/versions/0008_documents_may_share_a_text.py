"""Two documents of a collection may hold the same text under their own ids.

The unique (collection_id, content_hash) constraint made a document with a
new id but a stored text vanish (skipped as a duplicate); a plain index
keeps the look-up by hash fast.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("documents") as batch:
        batch.drop_constraint("uq_documents_collection_hash", type_="unique")
        batch.create_index("ix_documents_collection_hash", ["collection_id", "content_hash"])


def downgrade() -> None:
    # Fails while two documents of a collection share a text: delete one of them first.
    with op.batch_alter_table("documents") as batch:
        batch.drop_index("ix_documents_collection_hash")
        batch.create_unique_constraint("uq_documents_collection_hash", ["collection_id", "content_hash"])
