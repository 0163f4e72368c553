"""Templates: a VM's disk image kept in a storage pool with the VM's shape, to clone from."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, DateTime, Integer, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from whimbrel.store.models import Base, utcnow


class Template(Base):
    __tablename__ = "templates"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    # Where the image lies: a host's pool.  On a cluster's shared storage every node of
    # the cluster clones from it; on a local pool only that host does.
    host: Mapped[str] = mapped_column(String(63))
    pool: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(4096))
    fmt: Mapped[str] = mapped_column(String(16))
    size_bytes: Mapped[int] = mapped_column(BigInteger)
    memory_mib: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    networks: Mapped[list[Any]] = mapped_column(default=list)
    kernel: Mapped[str] = mapped_column(String(4096), default="")
    initrd: Mapped[str] = mapped_column(String(4096), default="")
    cmdline: Mapped[str] = mapped_column(Text, default="")
    source_vm: Mapped[str] = mapped_column(String(63))
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
