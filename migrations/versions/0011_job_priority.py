"""A job keeps the priority its message was sent with, so that a batch
claims waiting jobs in the order the broker hands them out.

Revision ID: 0011
Revises: 0010
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False, server_default="5"))
        batch.create_index("ix_jobs_status_priority_updated", ["status", "priority", "updated_at"])


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index("ix_jobs_status_priority_updated")
        batch.drop_column("priority")
