"""The transport double's inventory answers and what would stop a move (see :mod:`.double`).

Parameters keep the names the scripts give them (PowerShell's), so they bind the same.
"""

from __future__ import annotations

import ipaddress
import re
import uuid
from typing import TYPE_CHECKING, Any

from whimbrel.ad.delegation import missing
from whimbrel.errors import WhimbrelError

if TYPE_CHECKING:
    from tests.hyperv_double.estate import DHost, DVm, HyperVEstate

NO_CREDENTIALS = (
    "Virtual machine migration operation for '{vm}' failed at migration source '{src}'. "
    "Failed to establish a connection with host '{dst}': No credentials are available in the "
    "security package (0x8009030E). The Virtual Machine Management Service failed to "
    "authenticate the connection for a Virtual Machine migration at the source host: no "
    "suitable credentials available."
)


def host_error(message: str, fqid: str = "", category: str = "") -> Exception:
    from tests.hyperv_double.estate import HostError

    return HostError(message, fqid, category)


def vm_of(h: DHost, name: str) -> DVm:
    if name not in h.vms:
        raise host_error(
            f"Hyper-V was unable to find a virtual machine with name '{name}'.",
            # What Get-VM really throws: an invalid argument, not ObjectNotFound.
            "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVM",
            "InvalidArgument",
        )
    return h.vms[name]


# -- inventory ---------------------------------------------------------------------


def host_inventory(e: HyperVEstate, h: DHost) -> Any:
    vol = h.vhd_path
    return {
        "Name": h.name,
        "Fqdn": h.fqdn,
        "Uuid": str(uuid.uuid5(uuid.NAMESPACE_DNS, h.fqdn)),
        "OsVersion": h.os_version,
        "OsBuild": h.os_build,
        "PartOfDomain": bool(h.domain),
        "Domain": h.domain or "WORKGROUP",
        "ProcessorName": h.cpu,
        "ProcessorVendor": h.vendor,
        "LogicalProcessorCount": 64,
        "MemoryCapacity": h.memory,
        "FreePhysicalMemoryBytes": h.free(),
        "VirtualHardDiskPath": vol,
        "VirtualHardDiskFreeBytes": 900 << 30,
        "VirtualHardDiskSizeBytes": 1 << 40,
        "VirtualMachineMigrationEnabled": h.enabled,
        "MaximumVirtualMachineMigrations": h.max_live,
        "MaximumStorageMigrations": h.max_storage,
        "VirtualMachineMigrationAuthenticationType": h.auth,
        "VirtualMachineMigrationPerformanceOption": h.performance,
        "UseAnyNetworkForMigration": h.use_any,
        "SupportedVmVersions": list(h.versions),
        "DefaultVmVersion": h.versions[-1],
        "MigrationNetworks": [{"Subnet": s, "Priority": i} for i, s in enumerate(h.subnets)],
        "Addresses": list(h.addresses),
        "Switches": [
            {
                "Name": s,
                "Id": str(uuid.uuid5(uuid.NAMESPACE_URL, h.name + s)),
                "SwitchType": "External",
            }
            for s in h.switches
        ],
        "LocalAccounts": list(h.accounts),
        "Clustered": bool(h.cluster),
    }


def host_security(e: HyperVEstate, h: DHost) -> Any:
    running = [1, 2] if h.credential_guard else []
    return {
        "SecurityServicesRunning": running,
        "SecurityServicesConfigured": running,
        "VirtualizationBasedSecurityStatus": 2 if running else 0,
        "CredentialGuardRunning": h.credential_guard,
        "LsaCfgFlags": None,
        "OsBuild": h.os_build,
    }


def cluster_inventory(e: HyperVEstate, h: DHost) -> Any:
    if not h.cluster:
        raise host_error("The cluster service is not running on this computer.")
    c = e.clusters[h.cluster]
    nodes = [n for n in e.hosts.values() if n.cluster == c.name]
    groups = []
    for n in nodes:
        for v in n.vms.values():
            if v.name in c.groups:
                state = "Online" if v.state == "Running" else "Offline"
                groups.append(
                    {
                        "Name": v.name,
                        "Id": v.id,
                        "OwnerNode": n.name,
                        "State": state,
                        "Queued": False,
                        "Priority": c.groups[v.name],
                    }
                )
    return {
        "Cluster": c.name,
        "Domain": h.domain or "",
        "MaximumParallelMigrations": c.max_parallel,
        "Nodes": [
            {
                "Name": n.name,
                "Id": str(i + 1),
                "State": n.node_state,
                "DrainStatus": n.drain,
                "StatusInformation": 0,
            }
            for i, n in enumerate(nodes)
        ],
        "VmGroups": groups,
        "Csvs": [
            {
                "Name": f"Cluster Virtual Disk ({v.rsplit(chr(92), 1)[-1]})",
                "State": "Online",
                "OwnerNode": nodes[0].name,
                "Volumes": [{"Path": v, "Size": 4 << 40, "FreeSpace": 3 << 40}],
            }
            for v in c.volumes
        ],
    }


def vm_list(e: HyperVEstate, h: DHost, Name: str = "") -> Any:
    return [
        {
            "Name": v.name,
            "Id": v.id,
            "State": v.state,
            "Generation": 2,
            "Version": v.version,
            "IsClustered": v.clustered,
            "ProcessorCount": v.cpus,
            "MemoryAssigned": v.memory if v.state == "Running" else 0,
            "MemoryStartup": v.memory,
            "UptimeSeconds": 3600 if v.state == "Running" else 0,
            "Path": v.disks[0].rsplit("\\", 1)[0] if v.disks else h.vhd_path,
            "CompatibilityForMigrationEnabled": v.compat,
            "Disks": [
                {
                    "Path": d,
                    "ControllerType": "SCSI",
                    "ControllerNumber": 0,
                    "ControllerLocation": i,
                }
                for i, d in enumerate(v.disks)
            ],
            "NetworkAdapters": [
                {"Name": "Network Adapter", "SwitchName": s, "MacAddress": ""} for s in v.switches
            ],
        }
        for v in h.vms.values()
        if not Name or v.name == Name
    ]


# -- what stops a move, as the hosts would find out --------------------------------


def refusal(e: HyperVEstate, src: DHost, dst: DHost, vm: DVm, in_cluster: bool) -> str:
    """Why the move of ``vm`` would fail; "" when it would go through."""
    fmt = {"vm": vm.name, "src": src.name, "dst": dst.name}
    if not dst.enabled:
        return (
            f"Virtual machine migration operation for '{vm.name}' failed at migration "
            f"source '{src.name}'. Failed to establish a connection with host '{dst.name}': "
            "No connection could be made because the target machine actively refused it. "
            "(0x8007274D)."
        )
    if not dst.use_any and not any(
        ipaddress.ip_interface(a).ip in ipaddress.ip_network(s, strict=False)
        for a in src.addresses
        for s in dst.subnets
    ):
        return (
            f"Virtual machine migration operation for '{vm.name}' failed at migration "
            f"source '{src.name}'. Failed to establish a connection with host '{dst.name}': "
            "A connection attempt failed because the connected party did not properly "
            "respond after a period of time (0x8007274C)."
        )
    if in_cluster and not src.domain and src.os_build < 26100:
        return (
            f"Live migration of '{vm.name}' failed: live migration in a workgroup cluster "
            "needs Windows Server 2025 on every node."
        )
    if in_cluster and not src.domain and not set(src.accounts) & set(dst.accounts):
        return (
            f"Live migration of '{vm.name}' failed: the nodes of the workgroup cluster share "
            "no local account to authenticate with (0x8009030E)."
        )
    if (
        not in_cluster
        and src.auth == "CredSSP"
        and (src.session != "credssp" or src.credential_guard)
    ):
        return NO_CREDENTIALS.format(**fmt)
    if not in_cluster and src.auth == "Kerberos":
        try:
            s, d = e.directory.computer(src.name), e.directory.computer(dst.name)
        except WhimbrelError:
            return NO_CREDENTIALS.format(**fmt)
        if missing(s, d) or not s.any_protocol:
            return NO_CREDENTIALS.format(**fmt)
    if vm.version not in dst.versions:
        return (
            f"The virtual machine '{vm.name}' is using configuration version {vm.version}, "
            f"which '{dst.name}' does not support."
        )
    lost = [s for s in vm.switches if s not in dst.switches]
    if lost:
        return (
            f"Virtual machine '{vm.name}' failed to live migrate because a virtual switch it "
            f"uses doesn't exist on the destination node: Could not find Ethernet switch "
            f"'{lost[0]}'."
        )
    if src.vendor != dst.vendor or (src.cpu != dst.cpu and not vm.compat):
        return (
            f"Virtual machine '{vm.name}' is using processor-specific features not "
            f"supported on host '{dst.name}'."
        )
    if vm.memory > dst.free():
        return (
            f"'{vm.name}' could not initialize memory: Ran out of memory (0x8007000E) at "
            f"migration destination '{dst.name}'."
        )
    return ""


def vm_compare(
    e: HyperVEstate,
    h: DHost,
    Name: str,
    DestinationHost: str,
    IncludeStorage: bool = False,
    DestinationStoragePath: str = "",
) -> Any:
    vm, dst = vm_of(h, Name), e.host_of(DestinationHost)
    if IncludeStorage and not re.match(r"^([A-Za-z]:\\|\\\\)", DestinationStoragePath):
        raise host_error(  # a pool's name is not a path to Compare-VM
            f"The path '{DestinationStoragePath}' is not a valid absolute path.",
            "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.CompareVM",
            "InvalidArgument",
        )
    why = refusal(e, h, dst, vm, False)
    if why and ("0x8009" in why or "0x80072" in why):
        raise host_error(why)  # not an incompatibility: Compare-VM itself fails
    return {
        "OperationType": "MoveVirtualMachineAndStorage" if IncludeStorage else "MoveVirtualMachine",
        "Destination": dst.name,
        "Incompatibilities": [
            {
                "MessageId": 33012,
                "Message": f"Could not find Ethernet switch '{s}'.",
                "SourceType": "VMNetworkAdapter",
                "Source": f"VMNetworkAdapter (Name = 'Network Adapter', VMName = '{vm.name}')",
            }
            for s in vm.switches
            if s not in dst.switches
        ],
    }
