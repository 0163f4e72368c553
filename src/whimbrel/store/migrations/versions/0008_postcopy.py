"""postcopy: whether a cluster's live migrations may end in post-copy

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "clusters", sa.Column("postcopy", sa.String(16), nullable=False, server_default="never")
    )


def downgrade() -> None:
    with op.batch_alter_table("clusters") as b:
        b.drop_column("postcopy")
