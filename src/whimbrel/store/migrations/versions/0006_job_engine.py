"""job engine: an index on the job state, and undos that wait for their host

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_jobs_state", "jobs", ["state"])
    op.create_table(
        "pending_undos",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column(
            "job_id", sa.Integer(), sa.ForeignKey("jobs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("step_index", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(63), nullable=False),
        sa.Column("vms", sa.JSON(), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("since", sa.DateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=False),
    )
    op.create_index("ix_pending_undos_job_id", "pending_undos", ["job_id"])


def downgrade() -> None:
    op.drop_index("ix_pending_undos_job_id", "pending_undos")
    op.drop_table("pending_undos")
    op.drop_index("ix_jobs_state", "jobs")
