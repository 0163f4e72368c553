"""vm_sources: a VM's CD-ROM (an ISO image, booted from or not), a disk's backing image
(a linked clone of a template), and templates

Revision ID: 0010
Revises: 0009
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("vms", sa.Column("cdrom", sa.String(4096), nullable=False, server_default=""))
    op.add_column(
        "vms", sa.Column("boot_cdrom", sa.Boolean(), nullable=False, server_default=sa.false())
    )
    op.add_column("disks", sa.Column("backing", sa.String(4096), nullable=False, server_default=""))
    op.create_table(
        "templates",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("name", sa.String(63), nullable=False, unique=True),
        sa.Column("host", sa.String(63), nullable=False),
        sa.Column("pool", sa.String(255), nullable=False),
        sa.Column("path", sa.String(4096), nullable=False),
        sa.Column("fmt", sa.String(16), nullable=False),
        sa.Column("size_bytes", sa.BigInteger(), nullable=False),
        sa.Column("memory_mib", sa.Integer(), nullable=False),
        sa.Column("vcpus", sa.Integer(), nullable=False),
        sa.Column("networks", sa.JSON(), nullable=False),
        sa.Column("kernel", sa.String(4096), nullable=False),
        sa.Column("initrd", sa.String(4096), nullable=False),
        sa.Column("cmdline", sa.Text(), nullable=False),
        sa.Column("source_vm", sa.String(63), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("templates")
    with op.batch_alter_table("disks") as b:
        b.drop_column("backing")
    with op.batch_alter_table("vms") as b:
        b.drop_column("boot_cdrom")
        b.drop_column("cdrom")
