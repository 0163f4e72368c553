"""live migration: host addresses and maintenance, peer credentials, link throughput

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ADD COLUMN: a batch (copy-and-move) rebuild of ``hosts`` on SQLite
    # would drop a table that others reference, which foreign keys forbid.
    op.add_column("hosts", sa.Column("addresses", sa.JSON(), nullable=False, server_default="[]"))
    op.add_column(
        "hosts", sa.Column("maintenance", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column(
        "migration_settings",
        sa.Column("peer_pki", sa.String(4096), nullable=False, server_default=""),
    )
    op.create_table(
        "links",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("dest_id", sa.Integer(), nullable=False),
        sa.Column("bytes_per_s", sa.BigInteger(), nullable=False),
        sa.Column("measured_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["source_id"], ["hosts.id"], ondelete="CASCADE"),
        sa.ForeignKeyConstraint(["dest_id"], ["hosts.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("source_id", "dest_id"),
    )


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        op.execute("PRAGMA foreign_keys=OFF")  # batch mode rebuilds referenced tables
    op.drop_table("links")
    with op.batch_alter_table("migration_settings") as b:
        b.drop_column("peer_pki")
    with op.batch_alter_table("hosts") as b:
        b.drop_column("maintenance")
        b.drop_column("addresses")
