"""A job may follow an identical running job and be finished by it.

Revision ID: 0009
Revises: 0008
"""

import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.add_column(sa.Column("follows_job_id", sa.String(length=32), nullable=True))
        batch.create_index(batch.f("ix_jobs_follows_job_id"), ["follows_job_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("jobs") as batch:
        batch.drop_index(batch.f("ix_jobs_follows_job_id"))
        batch.drop_column("follows_job_id")
