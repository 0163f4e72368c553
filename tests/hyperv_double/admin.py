"""The transport double's answers for the cluster, power, definitions and settings."""

from __future__ import annotations

import uuid
from typing import TYPE_CHECKING, Any

from tests.hyperv_double.inventory import host_error, refusal, vm_of
from tests.hyperv_double.moves import new_job, relocate

if TYPE_CHECKING:
    from tests.hyperv_double.estate import DCluster, DHost, HyperVEstate


def _cluster(e: HyperVEstate, h: DHost) -> DCluster:
    if not h.cluster:
        raise host_error("The cluster service is not running on this computer.")
    return e.clusters[h.cluster]


def _on_host(h: DHost, cmdlet: str) -> None:
    """Microsoft's pages for Move- and Add-ClusterVirtualMachineRole: "This cmdlet cannot be
    run remotely without Credential Security Service Provider (CredSSP) authentication on
    the server computer."  A session configuration that runs as the host's virtual account
    is not remote in that sense.  The text of the real refusal is not documented: the
    double throws the second hop's usual access denied."""
    if h.session == "credssp" or (h.session_config and h.session_config in h.configurations):
        return
    raise host_error(
        f"{cmdlet}: You do not have administrative privileges on the cluster. Access is "
        "denied. (0x80070005)",
        f"ClusterCmdletAccessDenied,Microsoft.FailoverClusters.PowerShell.{cmdlet}Command",
        "PermissionDenied",
    )


def _owner(e: HyperVEstate, c: DCluster, name: str) -> DHost:
    for n in e.hosts.values():
        if n.cluster == c.name and name in n.vms and name in c.groups:
            return n
    raise host_error(
        f"The cluster group '{name}' was not found.",
        "ClusterObjectNotFound,Microsoft.FailoverClusters.PowerShell.GetClusterGroupCommand",
        "ObjectNotFound",
    )


def cluster_group(e: HyperVEstate, h: DHost, Name: str) -> Any:
    c = _cluster(e, h)
    owner = _owner(e, c, Name)
    vm = owner.vms[Name]
    moving = any(j.vm_id == vm.id and j.state == 4 for j in e.jobs.values())
    return {
        "Name": Name,
        "OwnerNode": owner.name,
        "Priority": c.groups[Name],
        "State": "Online" if vm.state == "Running" else "Offline",
        "Queued": False,
        "Moving": moving,
    }


def cluster_move_role(
    e: HyperVEstate, h: DHost, Name: str, Node: str = "", MigrationType: str = "Live"
) -> Any:
    c = _cluster(e, h)
    _on_host(h, "MoveClusterVirtualMachineRole")
    src = _owner(e, c, Name)
    vm = src.vms[Name]
    nodes = [n for n in e.hosts.values() if n.cluster == c.name and n is not src]
    if Node:
        dst = e.host_of(Node)
        if dst.cluster != c.name:
            raise host_error(f"The node '{Node}' is not a node of cluster '{c.name}' (0x80071398).")
    else:  # the cluster's best node: the Up node with the most free memory
        up = [n for n in nodes if n.node_state == "Up"]
        if not up:
            raise host_error("There is no other node to move the role to (0x80071398).")
        dst = max(up, key=lambda n: n.free())
    if dst.node_state != "Up":
        raise host_error(f"The node '{dst.name}' is paused and takes no roles (0x80071398).")
    error = refusal(e, src, dst, vm, True)
    was = vm.state
    if MigrationType == "Quick" and was == "Running":
        vm.state = "Saved"  # saved, moved, started: the quick migration's outage

    def effect() -> None:
        relocate(e, src, dst, vm, {})
        vm.state = was

    new_job(e, src, vm, 305, 32768, effect, error).started += e.cluster_lag_s
    return {"Name": Name, "OwnerNode": src.name, "State": "Online"}


def cluster_move_cancel(e: HyperVEstate, h: DHost, Name: str) -> Any:
    for j in e.jobs.values():
        if j.state == 4 and any(
            Name in n.vms and n.vms[Name].id == j.vm_id for n in e.hosts.values()
        ):
            j.cancelled = True
    return {"Cancelled": Name}


def cluster_role_add(e: HyperVEstate, h: DHost, VMName: str, Priority: int = 2000) -> Any:
    c = _cluster(e, h)
    _on_host(h, "AddClusterVirtualMachineRole")
    vm = vm_of(h, VMName)
    off = [
        d for d in vm.disks if not any(d.lower().startswith(v.lower() + "\\") for v in c.volumes)
    ]
    if off:
        raise host_error(
            f"The virtual machine '{VMName}' has files that are not on cluster storage: "
            f"{off[0]}. Move them to a Cluster Shared Volume first."
        )
    c.groups[VMName] = Priority
    vm.clustered = True
    return {"Name": VMName, "OwnerNode": h.name, "State": "Online", "Priority": Priority}


def cluster_role_remove(e: HyperVEstate, h: DHost, VMName: str) -> Any:
    c = _cluster(e, h)
    there = c.groups.pop(VMName, None) is not None
    for n in e.hosts.values():
        if VMName in n.vms:
            n.vms[VMName].clustered = False
    return {"Removed": int(there)}


def _node_view(n: DHost) -> Any:
    return {"Name": n.name, "State": n.node_state, "DrainStatus": n.drain, "StatusInformation": 0}


def node_suspend(e: HyperVEstate, h: DHost, Name: str, Drain: bool = False) -> Any:
    c = _cluster(e, h)
    n = e.host_of(Name)
    n.node_state = "Paused"
    if Drain:
        others = [x for x in e.hosts.values() if x.cluster == c.name and x.node_state == "Up"]
        roles = [v for v in n.vms.values() if v.name in c.groups]
        if roles and not others:
            n.drain = "Failed"
        else:
            for v in roles:
                relocate(e, n, max(others, key=lambda x: x.free()), v, {})
            n.drain = "Completed"
    return _node_view(n)


def node_resume(e: HyperVEstate, h: DHost, Name: str, Failback: str = "NoFailback") -> Any:
    _cluster(e, h)
    n = e.host_of(Name)
    n.node_state, n.drain = "Up", "NotInitiated"
    return _node_view(n)


def node_state(e: HyperVEstate, h: DHost, Name: str) -> Any:
    _cluster(e, h)
    return _node_view(e.host_of(Name))


def migration_set(
    e: HyperVEstate,
    h: DHost,
    Enabled: bool,
    Authentication: str,
    Performance: str,
    MaximumVirtualMachineMigrations: int,
    MaximumStorageMigrations: int,
    Subnets: list[str] | None = None,
) -> Any:
    h.enabled, h.auth, h.performance = Enabled, Authentication, Performance
    h.max_live, h.max_storage = MaximumVirtualMachineMigrations, MaximumStorageMigrations
    h.subnets = list(Subnets or [])
    h.use_any = not h.subnets
    return {"Enabled": Enabled, "Subnets": h.subnets}


def vm_power(e: HyperVEstate, h: DHost, Name: str, Action: str) -> Any:
    vm = vm_of(h, Name)
    if Action == "Start":
        for other in e.hosts.values():
            for v in other.vms.values():
                if (
                    v is not vm
                    and v.state in ("Running", "Paused")
                    and any(e.key(other, d) == e.key(h, x) for d in v.disks for x in vm.disks)
                ):
                    raise host_error(
                        f"'{Name}' failed to start: The process cannot access the file "
                        "because it is being used by another process. (0x80070020)"
                    )
        if vm.state != "Saved" and vm.memory > h.free():
            raise host_error(
                f"'{Name}' could not initialize memory: Ran out of memory (0x8007000E)."
            )
        vm.state = "Running"
    elif Action in ("Shutdown", "TurnOff"):
        vm.state = "Off"
    elif Action == "Save":
        vm.state = "Saved"
    elif Action == "Pause":
        vm.state = "Paused"
    elif Action == "Resume":
        vm.state = "Running"
    elif Action == "DiscardSaved":
        vm.state = "Off" if vm.state == "Saved" else vm.state
    return {"Name": Name, "State": vm.state}


def vm_define(
    e: HyperVEstate,
    h: DHost,
    Name: str,
    MemoryBytes: int,
    ProcessorCount: int,
    Version: str,
    Path: str,
    Disks: list[str] | None = None,
    Switches: list[str] | None = None,
) -> Any:
    from tests.hyperv_double.estate import DVm

    if Version not in h.versions:
        raise host_error(f"'{h.name}' does not support configuration version {Version}.")
    for d in Disks or []:
        if e.key(h, d) not in e.files:
            raise host_error(f"The system cannot find the file specified: '{d}' (0x80070002).")
    for s in Switches or []:
        if s not in h.switches:
            raise host_error(f"Could not find Ethernet switch '{s}'.")
    vm = DVm(
        Name,
        str(uuid.uuid4()).upper(),
        MemoryBytes,
        list(Disks or []),
        list(Switches or []),
        Version,
        cpus=ProcessorCount,
    )
    h.vms[Name] = vm
    return {"Name": Name, "Id": vm.id}


def vm_remove(e: HyperVEstate, h: DHost, Name: str) -> Any:
    vm = h.vms.get(Name)
    if vm is not None and vm.state in ("Running", "Paused"):
        raise host_error(f"The virtual machine '{Name}' is running; turn it off first.")
    h.vms.pop(Name, None)
    return {"Removed": int(vm is not None)}


def vm_disks_set(e: HyperVEstate, h: DHost, Name: str, Paths: dict[str, str]) -> Any:
    vm = vm_of(h, Name)
    for loc, path in Paths.items():
        vm.disks[int(loc)] = path
    return {"Name": Name, "Count": len(Paths)}


def vhd_new(e: HyperVEstate, h: DHost, Path: str, SizeBytes: int) -> Any:
    if e.key(h, Path) in e.files:
        raise host_error(f"The file '{Path}' already exists (ResourceExists)", "ResourceExists")
    e.files[e.key(h, Path)] = SizeBytes
    return {"Path": Path, "Size": SizeBytes}


def vhd_remove(e: HyperVEstate, h: DHost, Path: str) -> Any:
    there = e.files.pop(e.key(h, Path), None) is not None
    return {"Path": Path, "Removed": there}
