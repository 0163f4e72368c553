"""SQLAlchemy models: the manager's whole memory.

A restart of ``whimbrel serve`` loses nothing, because inventory, settings and
jobs (with each step's persisted result) live here.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    Float,
    ForeignKey,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

from whimbrel.domain.host import DETECTION_S, HostState, IsolationResponse
from whimbrel.domain.migration import PostCopy


def utcnow() -> datetime:
    return datetime.now(UTC)


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {dict[str, Any]: JSON, list[Any]: JSON}


class Cluster(Base):
    __tablename__ = "clusters"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    # Cluster reserve k (as in SCVMM): how many failed nodes the cluster must absorb.
    reserve: Mapped[int] = mapped_column(Integer, default=1)
    # The last reserve verdict (placement/reserve.py), recomputed on VMM's
    # four events: reserve changed, node failed or removed, node added, new VM.
    overcommit: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Failure detection: both liveness channels silent this long make a node lost.
    detection_s: Mapped[int] = mapped_column(Integer, default=DETECTION_S)
    # What a node cut from its peers but not from its storage does with its HA VMs.
    isolation_response: Mapped[str] = mapped_column(String(16), default=IsolationResponse.LEAVE)
    # Where the manager reads its nodes' storage heartbeats ("": the heartbeat
    # directory of the first shared path, when the manager's machine mounts it).
    heartbeat_dir: Mapped[str] = mapped_column(String(4096), default="")
    # May a live migration within the cluster end in post-copy (domain/migration.py)?
    postcopy: Mapped[str] = mapped_column(String(16), default=PostCopy.NEVER)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    hosts: Mapped[list[Host]] = relationship(back_populates="cluster")
    shared_storage: Mapped[list[SharedStorage]] = relationship(
        back_populates="cluster", cascade="all, delete-orphan"
    )


class SharedStorage(Base):
    """A path the administrator declares shared by every host of a cluster (Hyper-V's CSV)."""

    __tablename__ = "shared_storage"
    __table_args__ = (UniqueConstraint("cluster_id", "path"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    cluster_id: Mapped[int] = mapped_column(ForeignKey("clusters.id", ondelete="CASCADE"))
    path: Mapped[str] = mapped_column(String(4096))
    cluster: Mapped[Cluster] = relationship(back_populates="shared_storage")


class Host(Base):
    __tablename__ = "hosts"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    uri: Mapped[str] = mapped_column(String(1024), unique=True)
    cluster_id: Mapped[int | None] = mapped_column(ForeignKey("clusters.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(32), default=HostState.CONNECTED)
    state_reason: Mapped[str] = mapped_column(Text, default="")  # the evidence
    state_since: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    fenced_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    # What happened to the host that an administrator should know (fenced, cleaned
    # up on its return): [{"at": ISO time, "event": text}], newest last, bounded.
    events: Mapped[list[Any]] = mapped_column(default=list)
    hostname: Mapped[str] = mapped_column(String(255), default="")
    host_uuid: Mapped[str] = mapped_column(String(64), default="")
    arch: Mapped[str] = mapped_column(String(32), default="")
    cpu_model: Mapped[str] = mapped_column(String(128), default="")
    cpus: Mapped[int] = mapped_column(Integer, default=0)
    memory_mib: Mapped[int] = mapped_column(Integer, default=0)
    free_memory_mib: Mapped[int] = mapped_column(Integer, default=0)
    hypervisor: Mapped[str] = mapped_column(String(64), default="")
    hypervisor_version: Mapped[str] = mapped_column(String(64), default="")
    virt_type: Mapped[str] = mapped_column(String(16), default="")
    machine_types: Mapped[list[Any]] = mapped_column(default=list)
    # The host's addresses with prefix (10.0.1.5/24): where migrations may arrive.
    addresses: Mapped[list[Any]] = mapped_column(default=list)
    # Maintenance mode: takes no new VMs and is no migration destination.
    maintenance: Mapped[bool] = mapped_column(default=False)
    # How failover powers the host off before restarting its VMs elsewhere:
    # {"agent": "lab" | "fence_ipmilan" | ..., "options": {...}}; {} for none.
    fence: Mapped[dict[str, Any]] = mapped_column(default=dict)
    refreshed_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    cluster: Mapped[Cluster | None] = relationship(back_populates="hosts")
    networks: Mapped[list[Network]] = relationship(
        back_populates="host", cascade="all, delete-orphan"
    )
    pools: Mapped[list[StoragePool]] = relationship(
        back_populates="host", cascade="all, delete-orphan"
    )
    migration: Mapped[MigrationSettings] = relationship(
        back_populates="host", cascade="all, delete-orphan", uselist=False
    )
    vms: Mapped[list[Vm]] = relationship(back_populates="host")


class MigrationSettings(Base):
    """Per-host migration settings: Hyper-V's Enable-VMMigration and Set-VMHost."""

    __tablename__ = "migration_settings"
    host_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    enabled: Mapped[bool] = mapped_column(default=True)
    max_live_migrations: Mapped[int] = mapped_column(Integer, default=2)
    max_storage_migrations: Mapped[int] = mapped_column(Integer, default=2)
    # CIDRs allowed to carry incoming migrations; empty list means "any network".
    networks: Mapped[list[Any]] = mapped_column(default=list)
    auth: Mapped[str] = mapped_column(String(16), default="managed")
    performance: Mapped[str] = mapped_column(String(16), default="compression")
    parallel_connections: Mapped[int] = mapped_column(Integer, default=4)
    encrypt: Mapped[bool] = mapped_column(default=False)
    # Peer auth: the directory on the host holding its own client certificate.
    peer_pki: Mapped[str] = mapped_column(String(4096), default="")
    host: Mapped[Host] = relationship(back_populates="migration")


class Link(Base):
    """Migration throughput last measured from one host to another (convergence prediction)."""

    __tablename__ = "links"
    source_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    dest_id: Mapped[int] = mapped_column(
        ForeignKey("hosts.id", ondelete="CASCADE"), primary_key=True
    )
    bytes_per_s: Mapped[int] = mapped_column(BigInteger, default=0)
    measured_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)


class Network(Base):
    __tablename__ = "networks"
    __table_args__ = (UniqueConstraint("host_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    bridge: Mapped[str] = mapped_column(String(64), default="")
    active: Mapped[bool] = mapped_column(default=True)
    host: Mapped[Host] = relationship(back_populates="networks")


class StoragePool(Base):
    __tablename__ = "storage_pools"
    __table_args__ = (UniqueConstraint("host_id", "name"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    host_id: Mapped[int] = mapped_column(ForeignKey("hosts.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(255))
    path: Mapped[str] = mapped_column(String(4096))
    capacity_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    available_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    active: Mapped[bool] = mapped_column(default=True)
    host: Mapped[Host] = relationship(back_populates="pools")


class Vm(Base):
    __tablename__ = "vms"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    uuid: Mapped[str] = mapped_column(String(36), unique=True)
    host_id: Mapped[int | None] = mapped_column(ForeignKey("hosts.id"), nullable=True)
    state: Mapped[str] = mapped_column(String(16), default="stopped")
    memory_mib: Mapped[int] = mapped_column(Integer)
    vcpus: Mapped[int] = mapped_column(Integer)
    virt_type: Mapped[str] = mapped_column(String(16))
    machine: Mapped[str] = mapped_column(String(64))
    kernel: Mapped[str] = mapped_column(String(4096), default="")
    initrd: Mapped[str] = mapped_column(String(4096), default="")
    cmdline: Mapped[str] = mapped_column(Text, default="")
    networks: Mapped[list[Any]] = mapped_column(default=list)
    ha: Mapped[bool] = mapped_column(default=False)
    ha_priority: Mapped[int] = mapped_column(Integer, default=2)  # 3 high .. 1 low; 0 no restart
    # "Unsupported cluster configuration": findings that would stop it failing over.
    findings: Mapped[list[Any]] = mapped_column(default=list)
    # An ISO image on the host attached as a CD-ROM ("" none), and whether it boots first.
    cdrom: Mapped[str] = mapped_column(String(4096), default="")
    boot_cdrom: Mapped[bool] = mapped_column(default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    host: Mapped[Host | None] = relationship(back_populates="vms")
    disks: Mapped[list[Disk]] = relationship(
        back_populates="vm", cascade="all, delete-orphan", order_by="Disk.target"
    )


class Disk(Base):
    __tablename__ = "disks"
    id: Mapped[int] = mapped_column(primary_key=True)
    vm_id: Mapped[int] = mapped_column(ForeignKey("vms.id", ondelete="CASCADE"))
    target: Mapped[str] = mapped_column(String(16))
    path: Mapped[str] = mapped_column(String(4096))
    fmt: Mapped[str] = mapped_column(String(16), default="qcow2")
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    pool: Mapped[str] = mapped_column(String(255), default="")
    shared: Mapped[bool] = mapped_column(default=False)
    # A linked clone's backing image (a template's), which every host it runs on must see.
    backing: Mapped[str] = mapped_column(String(4096), default="")
    vm: Mapped[Vm] = relationship(back_populates="disks")


class Job(Base):
    __tablename__ = "jobs"
    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(64))
    subject: Mapped[str] = mapped_column(String(255), default="")
    op: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # Indexed: the queue scan reads the New ones among every job ever run.
    state: Mapped[str] = mapped_column(String(16), default="New", index=True)
    locks: Mapped[list[Any]] = mapped_column(default=list)
    phase: Mapped[str] = mapped_column(String(64), default="")
    percent: Mapped[int] = mapped_column(Integer, default=0)
    message: Mapped[str] = mapped_column(Text, default="")
    progress: Mapped[dict[str, Any]] = mapped_column(default=dict)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    rollback: Mapped[str] = mapped_column(String(16), default="none")
    manual_fix: Mapped[str] = mapped_column(Text, default="")
    cancel_requested: Mapped[bool] = mapped_column(default=False)
    result: Mapped[dict[str, Any]] = mapped_column(default=dict)
    # The replica running it, how many times it was claimed (a replica that lost its
    # claim stops writing), and until when (the store's clock) its claim holds.
    owner: Mapped[str | None] = mapped_column(String(128), nullable=True)
    claim: Mapped[int] = mapped_column(Integer, default=0)
    lease_until: Mapped[float | None] = mapped_column(Float, nullable=True)
    submitted_by: Mapped[str | None] = mapped_column(String(128), nullable=True)
    user: Mapped[str] = mapped_column(String(63), default="")  # who asked; '' the manager
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    steps: Mapped[list[JobStep]] = relationship(
        back_populates="job", cascade="all, delete-orphan", order_by="JobStep.index"
    )


class JobStep(Base):
    __tablename__ = "job_steps"
    __table_args__ = (UniqueConstraint("job_id", "index"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"))
    index: Mapped[int] = mapped_column(Integer)
    name: Mapped[str] = mapped_column(String(128))
    description: Mapped[str] = mapped_column(Text, default="")
    state: Mapped[str] = mapped_column(String(16), default="pending")
    result: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    error: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    started_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    finished_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    job: Mapped[Job] = relationship(back_populates="steps")


class HaSettings(Base):
    """Fleet-wide failover guards: one row."""

    __tablename__ = "ha_settings"
    id: Mapped[int] = mapped_column(primary_key=True)
    # At most this many hosts fenced automatically within the window; more wait
    # for the administrator's 'host fence confirm'.
    fence_cap: Mapped[int] = mapped_column(Integer, default=1)
    fence_window_s: Mapped[int] = mapped_column(Integer, default=900)


class PendingUndo(Base):
    """An undo that could not run because its host did not answer: tried again when
    the host is back, and a later job on the same VM finishes it first."""

    __tablename__ = "pending_undos"
    id: Mapped[int] = mapped_column(primary_key=True)
    job_id: Mapped[int] = mapped_column(ForeignKey("jobs.id", ondelete="CASCADE"), index=True)
    step_index: Mapped[int] = mapped_column(Integer)
    host: Mapped[str] = mapped_column(String(63), default="")
    vms: Mapped[list[Any]] = mapped_column(default=list)  # the VMs whose jobs it blocks
    description: Mapped[str] = mapped_column(Text, default="")
    since: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    last_error: Mapped[str] = mapped_column(Text, default="")
    retrying_by: Mapped[str | None] = mapped_column(String(128), nullable=True)


class Replica(Base):
    """A manager process sharing the store; times are the store's clock (seconds)."""

    __tablename__ = "replicas"
    name: Mapped[str] = mapped_column(String(128), primary_key=True)
    instance: Mapped[str] = mapped_column(String(32))  # one per process start
    url: Mapped[str] = mapped_column(String(255))
    pid: Mapped[int] = mapped_column(Integer)
    machine: Mapped[str] = mapped_column(String(255))
    started_at: Mapped[float] = mapped_column(Float)
    seen_at: Mapped[float] = mapped_column(Float)
    lease_until: Mapped[float] = mapped_column(Float)
    stopped: Mapped[bool] = mapped_column(default=False)


class Lease(Base):
    """A named lease with an epoch: 'leader' (monitor, failover watch, janitor); and
    rows whose locks serialise replicas: 'queue' (claim passes), 'fencing'."""

    __tablename__ = "leases"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    holder: Mapped[str] = mapped_column(String(128), default="")
    instance: Mapped[str] = mapped_column(String(32), default="")
    epoch: Mapped[int] = mapped_column(Integer, default=0)
    acquired_at: Mapped[float] = mapped_column(Float, default=0.0)
    expires_at: Mapped[float] = mapped_column(Float, default=0.0)
