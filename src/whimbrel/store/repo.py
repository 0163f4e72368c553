"""Look-ups that raise Whimbrel's not-found errors, and inventory snapshots."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import or_, select
from sqlalchemy.orm import Session, selectinload

from whimbrel.domain.host import HostInventory, HostState
from whimbrel.domain.job import FINAL_JOB_STATES
from whimbrel.domain.migration import Auth, HostMigration, Performance
from whimbrel.domain.vm import VmState
from whimbrel.errors import NotFound, not_found
from whimbrel.store.models import Cluster, Host, Job, MigrationSettings, Network, StoragePool, Vm


def get_host(s: Session, name: str) -> Host:
    host = s.scalar(select(Host).where(Host.name == name))
    if host is None:
        raise not_found("host", name)
    return host


def get_cluster(s: Session, name: str) -> Cluster:
    cluster = s.scalar(select(Cluster).where(Cluster.name == name))
    if cluster is None:
        raise not_found("cluster", name)
    return cluster


def get_vm(s: Session, name: str) -> Vm:
    vm = s.scalar(select(Vm).where(Vm.name == name))
    if vm is None:
        raise not_found("vm", name)
    return vm


def vm_host_name(s: Session, name: str) -> str | None:
    vm = get_vm(s, name)
    return vm.host.name if vm.host is not None else None


def cluster_of_host(h: Host) -> str | None:
    return h.cluster.name if h.cluster is not None else None


def cluster_of_vm(vm: Vm) -> str | None:
    return cluster_of_host(vm.host) if vm.host is not None else None


def get_job(s: Session, job_id: int) -> Job:
    job = s.get(Job, job_id)
    if job is None:
        raise job_not_found(job_id)
    return job


def job_not_found(job_id: int) -> NotFound:
    return NotFound(
        "E_JOB_NOT_FOUND",
        f"there is no job {job_id}",
        "run 'whimbrel job list' to see the job ids",
    )


def apply_inventory(host: Host, inv: HostInventory) -> None:
    """Copy a driver's inventory onto the host row (networks and pools replaced)."""
    i = inv.info
    host.hostname, host.host_uuid, host.arch = i.hostname, i.uuid, i.arch
    host.cpu_model, host.cpus = i.cpu_model, i.cpus
    host.memory_mib, host.free_memory_mib = i.memory_mib, i.free_memory_mib
    host.hypervisor, host.hypervisor_version = i.hypervisor, i.hypervisor_version
    host.machine_types = list(i.machine_types)
    host.virt_type = i.virt_types[0] if i.virt_types else ""
    host.state, host.state_reason = HostState.CONNECTED, ""
    host.refreshed_at = datetime.now(UTC)
    # Update rows in place: replacing them would insert the new (host, name)
    # before deleting the old one and trip the unique constraint.
    nets = {n.name: n for n in host.networks}
    host.networks = [nets.get(n.name) or Network(name=n.name) for n in inv.networks]
    for row, n in zip(host.networks, inv.networks, strict=True):
        row.bridge, row.active = n.bridge, n.active
    pools = {p.name: p for p in host.pools}
    host.pools = [pools.get(p.name) or StoragePool(name=p.name) for p in inv.pools]
    for prow, p in zip(host.pools, inv.pools, strict=True):
        prow.path, prow.active = p.path, p.active
        prow.capacity_bytes, prow.available_bytes = p.capacity_bytes, p.available_bytes
    if host.migration is None:
        host.migration = MigrationSettings()
    if inv.migration is not None:  # the host keeps its own settings (Hyper-V)
        m = inv.migration
        host.migration.enabled, host.migration.networks = m.enabled, list(m.networks)
        host.migration.max_live_migrations = m.max_live_migrations
        host.migration.max_storage_migrations = m.max_storage_migrations
        host.migration.auth, host.migration.performance = str(m.auth), str(m.performance)
    if inv.addresses:
        host.addresses = list(inv.addresses)


def is_shared_path(host: Host, path: str) -> bool:
    """Whether ``path`` lies on storage its cluster declares shared."""
    return host.cluster is not None and on_shared_storage(host.cluster, path)


def on_shared_storage(cluster: Cluster, path: str) -> bool:
    """Whether ``path`` lies on storage ``cluster`` declares shared by all its nodes."""
    return any(
        path == sp.path or path.startswith(sp.path.rstrip("/") + "/")
        for sp in cluster.shared_storage
    )


def migration_settings(h: Host) -> HostMigration:
    """A host's migration settings as the domain knows them (Hyper-V's defaults if unset)."""
    m = h.migration
    if m is None:
        return HostMigration()
    return HostMigration(
        enabled=m.enabled,
        max_live_migrations=m.max_live_migrations,
        max_storage_migrations=m.max_storage_migrations,
        networks=tuple(m.networks),
        auth=Auth(m.auth),
        performance=Performance(m.performance),
        parallel_connections=m.parallel_connections,
        encrypt=m.encrypt,
        peer_pki=m.peer_pki,
    )


def vms_locked(locks: list[str]) -> list[str]:
    """The VMs named by a job's ``vm:NAME`` locks."""
    return [lk.split(":", 1)[1] for lk in locks if lk.startswith("vm:")]


def busy_vms(s: Session, since: datetime | None = None) -> set[str]:
    """VMs that an unfinished job holds: their state is that job's to set.  With
    ``since`` (when a host was asked), also those of jobs that ended after it: the
    host's answer predates what they did."""
    held = Job.state.not_in(list(FINAL_JOB_STATES))
    cond = held if since is None else or_(held, Job.finished_at >= since)
    return {vm for ls in s.scalars(select(Job.locks).where(cond)) for vm in vms_locked(ls)}


def apply_domains(
    s: Session,
    host: Host,
    domains: dict[str, VmState] | None,
    skip: set[str] | frozenset[str] = frozenset(),
    vms: Iterable[Vm] | None = None,
) -> list[tuple[str, str, str]]:
    """Set each VM of ``host`` (``vms``, if the caller read them already) to what the
    host reports: None means the host is lost (its VMs 'unknown'), a VM it does not
    know is 'missing'.  Returns the changes."""
    changed = []
    if vms is None:
        vms = s.scalars(select(Vm).where(Vm.host_id == host.id))
    for vm in vms:
        if vm.name in skip:
            continue
        new = VmState.UNKNOWN if domains is None else domains.get(vm.name, VmState.MISSING)
        if vm.state != new:
            changed.append((vm.name, str(vm.state), str(new)))
            vm.state = new
    return changed


def follow_moves(
    s: Session,
    host: Host,
    domains: dict[str, VmState] | None,
    skip: set[str] | frozenset[str] = frozenset(),
    by_name: dict[str, Vm] | None = None,
) -> list[tuple[str, str]]:
    """Record on ``host`` the VMs it runs that the store places on a host where they do
    not run: moved outside Whimbrel (a Hyper-V failover cluster restarting a role on
    another node, a move by hand).  ``by_name``: the VMs, if the caller read them
    already.  Returns (VM, old host) for each."""
    moved = []
    running = [n for n, st in (domains or {}).items() if st == VmState.RUNNING]
    found: Iterable[Vm]
    if by_name is None:
        found = s.scalars(select(Vm).where(Vm.name.in_(running), Vm.host_id != host.id))
    else:
        found = (v for n in running if (v := by_name.get(n)) and v.host_id != host.id)
    for vm in found:
        if vm.name in skip or vm.state == VmState.RUNNING:
            continue  # a copy running in both places is the leases' to refuse, not ours
        moved.append((vm.name, vm.host.name if vm.host else ""))
        vm.host, vm.state = host, VmState.RUNNING
    return moved


def vms_on(s: Session, host: Host) -> list[Vm]:
    """The VMs placed on ``host``, with their disks and host loaded."""
    q = select(Vm).where(Vm.host_id == host.id)
    return list(s.scalars(q.options(selectinload(Vm.disks), selectinload(Vm.host))))


MAX_HOST_EVENTS = 50


def note_event(host: Host, event: str) -> None:
    """Record on the host something an administrator should know (newest last)."""
    at = datetime.now(UTC).isoformat(timespec="seconds")
    host.events = [*host.events, {"at": at, "event": event}][-MAX_HOST_EVENTS:]


def set_host_state(host: Host, state: str, evidence: str) -> bool:
    """Set the host's state and its evidence; ``state_since`` moves only when the
    state changes.  Returns whether it changed."""
    changed = host.state != state
    if changed:
        host.state_since = datetime.now(UTC)
    host.state, host.state_reason = state, evidence
    return changed
