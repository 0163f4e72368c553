"""liveness: failure detection per cluster, host state evidence and events, fence cap

Revision ID: 0005
Revises: 0004
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column(
        "clusters", sa.Column("detection_s", sa.Integer(), nullable=False, server_default="15")
    )
    op.add_column(
        "clusters",
        sa.Column("isolation_response", sa.String(16), nullable=False, server_default="leave"),
    )
    op.add_column(
        "clusters", sa.Column("heartbeat_dir", sa.String(4096), nullable=False, server_default="")
    )
    op.add_column("hosts", sa.Column("state_since", sa.DateTime(timezone=True), nullable=True))
    op.add_column("hosts", sa.Column("fenced_at", sa.DateTime(timezone=True), nullable=True))
    op.add_column("hosts", sa.Column("events", sa.JSON(), nullable=False, server_default="[]"))
    # 'unreachable' said less than it knew: management silent, nothing proven yet.
    op.execute("UPDATE hosts SET state = 'not responding' WHERE state = 'unreachable'")
    op.create_table(
        "ha_settings",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("fence_cap", sa.Integer(), nullable=False),
        sa.Column("fence_window_s", sa.Integer(), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("ha_settings")
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys=OFF")
    op.execute("UPDATE hosts SET state = 'unreachable' WHERE state != 'connected'")
    with op.batch_alter_table("hosts") as b:
        b.drop_column("events")
        b.drop_column("fenced_at")
        b.drop_column("state_since")
    with op.batch_alter_table("clusters") as b:
        b.drop_column("heartbeat_dir")
        b.drop_column("isolation_response")
        b.drop_column("detection_s")
