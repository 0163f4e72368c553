"""The transport double's moves: WMI jobs, Move-VM and Move-VMStorage (see :mod:`.double`)."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from tests.hyperv_double.inventory import host_error, refusal, vm_of

if TYPE_CHECKING:
    from tests.hyperv_double.estate import DHost, DJob, DVm, HyperVEstate


def new_job(
    e: HyperVEstate, h: DHost, vm: DVm, job_type: int, mtype: int, effect: Any, error: str
) -> DJob:
    from tests.hyperv_double.estate import DJob

    path = f'\\\\{h.name}\\root\\virtualization\\v2:Msvm_MigrationJob.InstanceID="{uuid.uuid4()}"'
    j = DJob(path, vm.id, h.name, job_type, mtype, time.monotonic(), e.job_s, effect, error)
    e.jobs[path] = j
    return j


def relocate(e: HyperVEstate, src: DHost, dst: DHost, vm: DVm, vhds: dict[str, str]) -> None:
    """The VM now lives on ``dst``; copied disks exist there and no longer on ``src``."""
    for old, new in vhds.items():
        size = e.files.pop(e.key(src, old), 8 << 30)
        e.files[e.key(dst, new)] = size
    vm.disks = [vhds.get(d, d) for d in vm.disks]
    del src.vms[vm.name]
    dst.vms[vm.name] = vm
    e.events.setdefault(dst.name, []).append(
        (
            time.time(),
            "The Virtual Machine Management Service successfully completed the live migration "
            f"of virtual machine '{vm.name}' with a blackout time of 0.3 seconds.",
        )
    )


def vm_migrate_wmi(
    e: HyperVEstate,
    h: DHost,
    Name: str,
    DestinationHost: str = "",
    MigrationType: int = 32768,
    TransportType: int = 5,
    Compress: bool = True,
    DataRoot: str = "",
    Vhds: dict[str, str] | None = None,
) -> Any:
    vm, dst = vm_of(h, Name), e.host_of(DestinationHost)
    if vm.state != "Running":
        return {"ReturnValue": 32775, "Job": "", "VMId": vm.id}
    vhds = dict(Vhds or {})
    error = refusal(e, h, dst, vm, False)
    if not error and any(e.key(dst, p) in e.files for p in vhds.values()):
        error = "The file exists at the migration destination (0x80070050)."
    kind = 306 if MigrationType == 32771 else 305
    j = new_job(e, h, vm, kind, MigrationType, lambda: relocate(e, h, dst, vm, vhds), error)
    return {"ReturnValue": 4096, "Job": j.path, "VMId": vm.id}


def job_state(e: HyperVEstate, h: DHost, JobPath: str) -> Any:
    j = e.jobs.get(JobPath)
    if j is None:  # [wmi] of a removed job throws "Not found"; the script says Gone
        return {"Gone": True, "JobState": 0}
    return {
        "JobState": j.state,
        "PercentComplete": j.percent() if j.state == 4 else 100,
        "ErrorCode": 32768 if j.state in (8, 9, 10) else 0,
        "ErrorDescription": j.error,
        "ErrorSummaryDescription": j.error,
        "JobType": j.job_type,
        "ElapsedSeconds": int(time.monotonic() - j.started),
    }


def migration_jobs(e: HyperVEstate, h: DHost, VMId: str) -> Any:
    return [
        {
            "InstanceId": j.path,
            "JobType": j.job_type,
            "MigrationType": j.migration_type,
            "DestinationHost": None,
            "JobState": j.state,
            "PercentComplete": j.percent(),
            "ErrorCode": 32768 if j.state in (8, 9, 10) else 0,
            "ErrorDescription": j.error,
            "Cancellable": j.state == 4,
        }
        for j in e.jobs.values()
        if j.vm_id == VMId and j.host == h.name and j.started <= time.monotonic()
    ]


def migration_cancel(e: HyperVEstate, h: DHost, VMId: str) -> Any:
    running = [j for j in e.jobs.values() if j.vm_id == VMId and j.state == 4]
    for j in running:
        j.cancelled = True
    return {"Cancelled": len(running), "Refused": []}


def vm_move(
    e: HyperVEstate,
    h: DHost,
    Name: str,
    DestinationHost: str,
    IncludeStorage: bool = False,
    DestinationStoragePath: str = "",
) -> Any:
    vm, dst = vm_of(h, Name), e.host_of(DestinationHost)
    if vm.state not in ("Off", "Saved"):
        raise host_error(f"The operation cannot be performed while '{vm.name}' is running.")
    why = refusal(e, h, dst, vm, False)
    if why and "0x8" in why:
        raise host_error(why)
    root = DestinationStoragePath.rstrip("\\")
    vhds = {d: f"{root}\\{d.rsplit(chr(92), 1)[-1]}" for d in vm.disks} if IncludeStorage else {}
    relocate(e, h, dst, vm, vhds)
    return {"Moved": Name, "DestinationHost": dst.name}


def vm_move_storage(e: HyperVEstate, h: DHost, Name: str, Vhds: list[dict[str, str]]) -> Any:
    vm = vm_of(h, Name)
    moves = {v["SourceFilePath"]: v["DestinationFilePath"] for v in Vhds}

    def effect() -> None:
        for old, new in moves.items():
            e.files[e.key(h, new)] = e.files.pop(e.key(h, old), 8 << 30)
        vm.disks = [moves.get(d, d) for d in vm.disks]

    taken = [p for p in moves.values() if e.key(h, p) in e.files]
    error = f"The file '{taken[0]}' already exists (0x80070050)." if taken else ""
    return new_job(e, h, vm, 307, 32769, effect, error).path


def migration_blackout(e: HyperVEstate, h: DHost, VMName: str, SinceSeconds: int = 900) -> Any:
    for at, msg in reversed(e.events.get(h.name, [])):
        if f"'{VMName}'" in msg and at >= time.time() - SinceSeconds:
            when = datetime.fromtimestamp(at, UTC).isoformat()
            return {"Id": 20415, "TimeCreated": when, "Message": msg}
    return None
