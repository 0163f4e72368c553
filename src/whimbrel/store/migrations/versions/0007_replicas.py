"""replicas: managers sharing one store, the leader's lease, claimed jobs

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "replicas",
        sa.Column("name", sa.String(128), primary_key=True),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("url", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("machine", sa.String(255), nullable=False),
        sa.Column("started_at", sa.Float(), nullable=False),
        sa.Column("seen_at", sa.Float(), nullable=False),
        sa.Column("lease_until", sa.Float(), nullable=False),
        sa.Column("stopped", sa.Boolean(), nullable=False),
    )
    op.create_table(
        "leases",
        sa.Column("name", sa.String(64), primary_key=True),
        sa.Column("holder", sa.String(128), nullable=False),
        sa.Column("instance", sa.String(32), nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("acquired_at", sa.Float(), nullable=False),
        sa.Column("expires_at", sa.Float(), nullable=False),
    )
    with op.batch_alter_table("jobs") as t:
        t.add_column(sa.Column("owner", sa.String(128), nullable=True))
        t.add_column(sa.Column("claim", sa.Integer(), nullable=False, server_default="0"))
        t.add_column(sa.Column("lease_until", sa.Float(), nullable=True))
        t.add_column(sa.Column("submitted_by", sa.String(128), nullable=True))
    with op.batch_alter_table("pending_undos") as t:
        t.add_column(sa.Column("retrying_by", sa.String(128), nullable=True))
    # Rows whose locks serialise replicas: 'queue' (every claim pass, so that two
    # replicas never start two jobs that need the same lock) and 'fencing' (a fence
    # decision: the cap read and the fence recorded together).
    op.execute(
        "INSERT INTO leases (name, holder, instance, epoch, acquired_at, expires_at) VALUES "
        "('queue', '', '', 0, 0, 0), ('fencing', '', '', 0, 0, 0), ('leader', '', '', 0, 0, 0)"
    )


def downgrade() -> None:
    with op.batch_alter_table("pending_undos") as t:
        t.drop_column("retrying_by")
    with op.batch_alter_table("jobs") as t:
        for c in ("submitted_by", "lease_until", "claim", "owner"):
            t.drop_column(c)
    op.drop_table("leases")
    op.drop_table("replicas")
