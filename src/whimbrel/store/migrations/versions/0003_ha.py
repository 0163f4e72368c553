"""clusters and HA: restart priority, configuration findings, the reserve verdict

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN, as in 0002: referenced tables cannot be rebuilt on SQLite.
    op.add_column("vms", sa.Column("ha_priority", sa.Integer(), nullable=False, server_default="2"))
    op.add_column("vms", sa.Column("findings", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column(
        "clusters", sa.Column("overcommit", sa.JSON(), nullable=False, server_default="{}")
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys=OFF")
    with op.batch_alter_table("clusters") as b:
        b.drop_column("overcommit")
    with op.batch_alter_table("vms") as b:
        b.drop_column("findings")
        b.drop_column("ha_priority")
