"""Moves on a Hyper-V host, each started by one script and followed to its end.

- inside a failover cluster: ``Move-ClusterVirtualMachineRole -MigrationType
  Live|Quick``, followed through the VM's cluster group until the target node
  owns it, Online and not queued (os-win's criteria);
- otherwise the WMI path, ``MigrateVirtualSystemToHost`` with
  MigrationType 32768 (or 32771 with storage), followed through the job's
  JobState and PercentComplete;
- offline and quick moves outside a cluster: ``Save-VM`` and ``Move-VM``;
- storage only: ``Move-VMStorage``, followed through its Msvm_MigrationJob.

Percentages feed the driver's :meth:`migration_stats`, which the job's
progress reads while the move blocks.
"""

from __future__ import annotations

import logging
import posixpath
import re
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING

from whimbrel.domain.migration import DiskMove, MigrationRequest, MigrationResult, Performance
from whimbrel.domain.vm import VmState
from whimbrel.drivers.hyperv import wire as w
from whimbrel.drivers.hyperv.errors import classify
from whimbrel.drivers.hyperv.model import HvGroup, HvJob, HvVm, node, state_of
from whimbrel.drivers.hyperv.transport import parse_uri
from whimbrel.errors import HypervisorError, WhimbrelError, WrongState

if TYPE_CHECKING:
    from whimbrel.drivers.hyperv.driver import HyperVHost

LIVE, STORAGE, STAGED, LIVE_STORAGE = 32768, 32769, 32770, 32771
TCP, SMB = 5, 32768
_RETURN = {
    32768: "failed", 32769: "access denied", 32770: "not supported", 32771: "status unknown",
    32772: "timeout", 32773: "invalid parameter", 32774: "system is in use",
    32775: "invalid state for this operation", 32776: "incorrect data type",
    32777: "system is not available", 32778: "out of memory",
}  # fmt: skip
_BLACKOUT = re.compile(r"blackout time of ([\d.,]+) seconds")
# What the source measured, for the destination's migration_result (same manager process).
_RESULTS: dict[str, tuple[int, int, int]] = {}
_RESULTS_LOCK = threading.Lock()

log = logging.getLogger(__name__)


def migrate(drv: HyperVHost, name: str, req: MigrationRequest) -> None:
    vm = drv.vm(name)
    dest = parse_uri(req.dest_uri).host
    disk = sum(d.size_bytes for d in req.copy_disks)
    total = vm.memory_bytes + disk
    started = time.monotonic()
    drv.report(name, True, 0, total)
    try:
        offline = state_of(vm) in (VmState.STOPPED, VmState.SAVED)
        if (req.quick or offline) and vm.clustered and _is_node(drv, dest):
            cluster_move(drv, vm, dest, "Quick", total)  # an Off role just changes owner
        elif req.quick:
            drv.call("vm_power", Name=name, Action="Save")
            _move_vm(drv, vm, dest, req)
        elif offline:
            _move_vm(drv, vm, dest, req)
        elif vm.clustered and not req.copy_disks and _is_node(drv, dest):
            cluster_move(drv, vm, dest, "Live", total)
        else:
            _wmi(drv, vm, dest, req, total)
    finally:
        drv.report(name, False, 100, total)
    with _RESULTS_LOCK:
        _RESULTS[name] = (int((time.monotonic() - started) * 1000), vm.memory_bytes, disk)


def _short(host: str) -> str:
    return host.split(".", 1)[0].lower()


def _is_node(drv: HyperVHost, dest: str) -> bool:
    c = drv.cluster()
    return c is not None and _short(dest) in {n.name.lower() for n in c.nodes}


def _move_vm(drv: HyperVHost, vm: HvVm, dest: str, req: MigrationRequest) -> None:
    root = posixpath.dirname(req.copy_disks[0].dest_path) if req.copy_disks else ""
    drv.call(
        "vm_move",
        Name=vm.name,
        DestinationHost=dest,
        IncludeStorage=bool(req.copy_disks),
        DestinationStoragePath=w.win_path(root),
    )


def _wmi(drv: HyperVHost, vm: HvVm, dest: str, req: MigrationRequest, total: int) -> None:
    vhds = {w.win_path(d.source_path): w.win_path(d.dest_path) for d in req.copy_disks}
    root = posixpath.dirname(req.copy_disks[0].dest_path) if req.copy_disks else ""
    r = drv.call(
        "vm_migrate_wmi",
        Name=vm.name,
        DestinationHost=dest,
        MigrationType=LIVE_STORAGE if req.copy_disks else LIVE,
        TransportType=SMB if req.performance == Performance.PARALLEL else TCP,
        Compress=req.performance == Performance.COMPRESSION,
        DataRoot=w.win_path(root),
        Vhds=vhds,
    )
    rv = int(r["ReturnValue"])
    if rv == 4096:
        wait_job(drv, vm.name, str(r["Job"]), total)
    elif rv != 0:
        raise HypervisorError(
            "E_HYPERV_MIGRATION_REFUSED",
            f"MigrateVirtualSystemToHost refused the move of {vm.name}: "
            f"{_RETURN.get(rv, 'unknown')} ({rv})",
            "see the Hyper-V-VMMS-Admin event log on the source",
        )


def wait_job(drv: HyperVHost, name: str, path: str, total: int) -> None:
    """Poll a WMI job until a final JobState; success is 7 (or 32768) with ErrorCode 0.

    A job that ended more than 5 minutes before a poll (a manager that stalled) is gone:
    where the VM is then decides, never a guess."""
    while True:
        j = HvJob.parse(drv.call("job_state", JobPath=path))
        if j.gone:
            if name not in {v.name for v in drv.list_domains()}:
                return  # it left the source: the move's own checks find it on the destination
            raise HypervisorError(
                "E_HYPERV_MIGRATION_FAILED",
                f"the migration job of {name} ended unread and was removed (Hyper-V keeps a "
                "finished job 5 minutes); the VM is still on the source",
                "see the Hyper-V-VMMS-Admin event log on the source for why, then move it again",
            )
        drv.report(name, True, j.percent, total)
        if j.done:
            if j.succeeded:
                return
            raise classify(j.error or f"the job ended in state {j.state}, error {j.error_code}")
        time.sleep(drv.poll_s)


def _jobs(drv: HyperVHost, vm: HvVm, ignore: frozenset[str] = frozenset()) -> list[HvJob]:
    """The VM's migration jobs on this host, but those in ``ignore``: a finished job stays
    listed 5 minutes, and a retry must not read the failure of the attempt before it."""
    jobs = (HvJob.parse(j) for j in w.as_list(drv.call("migration_jobs", VMId=vm.id)))
    return [j for j in jobs if j.instance_id not in ignore]


def cluster_move(drv: HyperVHost, vm: HvVm, dest: str, kind: str, total: int) -> None:
    """Move the VM's role to node ``dest``; done when it owns it, not queued, and Online
    if it ran (an Off role only changes owner)."""
    target = _short(dest)
    want = "Online" if state_of(vm) == VmState.RUNNING else "Offline"
    earlier = frozenset(j.instance_id for j in _jobs(drv, vm))
    drv.call("cluster_move_role", Name=vm.name, Node=target, MigrationType=kind)
    quiet_since: float | None = None
    while True:
        g = HvGroup.parse(drv.call("cluster_group", Name=vm.name))
        jobs = _jobs(drv, vm, earlier)
        running = [j for j in jobs if not j.done]
        if running:
            drv.report(vm.name, True, running[0].percent, total)
        if g.owner.lower() == target and g.state == want and not g.queued:
            return
        failed = [j for j in jobs if j.done and not j.succeeded]
        if failed and not running:
            raise classify(failed[-1].error or "the cluster's live migration failed")
        if g.state == "Failed":
            raise WrongState(
                "E_CLUSTER_ROLE_FAILED",
                f"VM role {vm.name} failed in the cluster during the move",
                "see the Hyper-V-High-Availability-Admin event log; start the role again",
            )
        idle = not running and not g.queued and g.state != "Pending"
        quiet_since = (quiet_since or time.monotonic()) if idle else None
        if quiet_since is not None and time.monotonic() - quiet_since > 30 * drv.poll_s:
            raise WrongState(
                "E_CLUSTER_MOVE_FAILED",
                f"the cluster left VM {vm.name} on {g.owner} instead of moving it to {target}",
                "check that the target node is Up and a possible owner of the role",
            )
        time.sleep(drv.poll_s)


def result(drv: HyperVHost, name: str, strategy: list[str]) -> MigrationResult:
    """The source's timing and the blackout Hyper-V logged (event 20415/20417)."""
    with _RESULTS_LOCK:
        total_ms, memory, disk = _RESULTS.pop(name, (0, 0, 0))
    downtime = 0
    try:
        # Only this move's event: one from an earlier move of the VM would mislead.
        since = total_ms // 1000 + 60
        ev = drv.call("migration_blackout", VMName=name, SinceSeconds=since)
    except WhimbrelError:
        ev = None
    if isinstance(ev, dict):
        m = _BLACKOUT.search(str(ev.get("Message", "")))
        if m:
            downtime = int(float(m.group(1).replace(",", ".")) * 1000)
    return MigrationResult(total_ms, downtime, memory, disk, 1, [*strategy, "hyper-v"])


def abort(drv: HyperVHost, name: str) -> None:
    vm = drv.vm(name)
    if vm.clustered:
        drv.call("cluster_move_cancel", Name=name)
    else:
        answer = drv.call("migration_cancel", VMId=vm.id) or {}
        if answer.get("Refused"):  # the job's own end then says what happened
            log.warning(
                "host refused to stop the migration jobs of %s: %s", name, answer["Refused"]
            )


def move_storage(
    drv: HyperVHost, name: str, moves: list[DiskMove], progress: Callable[[int, int], None]
) -> None:
    """Move-VMStorage in a thread of its own; its Msvm_MigrationJob gives the percent."""
    vm = drv.vm(name)
    total = sum(m.size_bytes for m in moves)
    vhds = [
        {
            "SourceFilePath": w.win_path(m.source_path),
            "DestinationFilePath": w.win_path(m.dest_path),
        }
        for m in moves
    ]
    failed: list[WhimbrelError] = []

    def run() -> None:
        try:
            drv.call("vm_move_storage", Name=name, Vhds=vhds)
        except WhimbrelError as exc:
            failed.append(exc)

    earlier = frozenset(j.instance_id for j in _jobs(drv, vm))
    t = threading.Thread(target=run, name=f"move-storage-{name}", daemon=True)
    t.start()
    while t.is_alive():
        t.join(drv.poll_s)
        for j in _jobs(drv, vm, earlier):
            if j.job_type == 307 and not j.done:
                progress(total * j.percent // 100, total)
    if failed:
        raise failed[0]
    progress(total, total)


def suspend_node(drv: HyperVHost, drain: bool) -> None:
    """Suspend-ClusterNode; with drain, wait until the cluster says Completed."""
    name = drv.facts().name
    drv.call("node_suspend", Name=name, Drain=drain)
    while drain:
        n = node(drv.call("node_state", Name=name))
        if n.drain_status == "Completed":
            return
        if n.drain_status == "Failed":
            raise WrongState(
                "E_NODE_DRAIN_FAILED",
                f"the cluster could not drain node {name}",
                "see which roles are left with Get-ClusterGroup and move them by hand",
            )
        time.sleep(drv.poll_s)
