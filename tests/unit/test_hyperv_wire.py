"""The JSON shapes the reference documents, including Windows PowerShell 5.1's quirks:
enums as numbers, a one-item array bare, an empty one as null, /Date(ms)/ dates,
TimeSpans and System.Version as objects, OwnerNode as a nested object."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest

from whimbrel.domain.vm import VmState
from whimbrel.drivers.hyperv import wire as w
from whimbrel.drivers.hyperv.errors import classify, remote
from whimbrel.drivers.hyperv.model import (
    HvCluster,
    HvHost,
    HvJob,
    HvVm,
    incompatibilities,
    state_of,
)
from whimbrel.errors import HypervisorError

# research/hyperv.md §1.1, the recommended script's shape.
HOST = json.loads(
    '{"Name":"HV01","Fqdn":"HV01.corp.example","OsVersion":"10.0.20348","OsBuild":20348,'
    '"LogicalProcessorCount":64,"MemoryCapacity":549755813888,"FreePhysicalMemoryBytes":'
    '301989888000,"VirtualMachineMigrationEnabled":true,"MaximumVirtualMachineMigrations":2,'
    '"MaximumStorageMigrations":2,"VirtualMachineMigrationAuthenticationType":"Kerberos",'
    '"VirtualMachineMigrationPerformanceOption":"Compression","UseAnyNetworkForMigration":false,'
    '"SupportedVmVersions":["8.0","9.0","10.0"],"DefaultVmVersion":"10.0",'
    '"MigrationNetworks":[{"Subnet":"10.10.20.0/24","Priority":0}]}'
)


def test_host_shape_with_names() -> None:
    h = HvHost.parse(HOST)
    assert (h.name, h.fqdn, h.auth, h.performance) == (
        "HV01",
        "HV01.corp.example",
        "Kerberos",
        "Compression",
    )
    assert h.memory_bytes == 549755813888 and h.supported_versions == ("8.0", "9.0", "10.0")
    assert h.migration_subnets == ("10.10.20.0/24",) and h.switches == ()


def test_host_shape_of_51_select_object() -> None:
    """`Get-VMHost | Select-Object ... | ConvertTo-Json` on 5.1: enums as numbers, one
    network bare, no switches at all."""
    raw = {
        **HOST,
        "VirtualMachineMigrationAuthenticationType": 0,
        "VirtualMachineMigrationPerformanceOption": 2,
        "MigrationNetworks": {"Subnet": "10.10.30.0/24", "Priority": None},
        "SupportedVmVersions": "9.0",
        "Switches": None,
        "DefaultVmVersion": {"Major": 9, "Minor": 0, "Build": -1, "Revision": -1},
    }
    h = HvHost.parse(raw)
    assert (h.auth, h.performance) == ("CredSSP", "SMB")
    assert h.migration_subnets == ("10.10.30.0/24",) and h.supported_versions == ("9.0",)
    assert h.default_version == "9.0" and h.switches == ()


def test_migration_networks_in_priority_order() -> None:
    nets = [{"Subnet": "b", "Priority": 8}, {"Subnet": "a", "Priority": 0}, {"Subnet": "c"}]
    assert HvHost.parse({**HOST, "MigrationNetworks": nets}).migration_subnets == ("a", "b", "c")


VM = {
    "Name": "vm1",
    "Id": "6f1c2a9e-0000-4000-8000-000000000001",
    "State": "Running",
    "Generation": 2,
    "Version": "9.0",
    "IsClustered": True,
    "ProcessorCount": 4,
    "MemoryAssigned": 8589934592,
    "MemoryStartup": 4294967296,
    "UptimeSeconds": 3600,
    "Path": "C:\\ClusterStorage\\Volume1\\vm1",
    "CompatibilityForMigrationEnabled": False,
    "Disks": [
        {
            "Path": "C:\\ClusterStorage\\Volume1\\vm1\\vm1.vhdx",
            "ControllerType": "SCSI",
            "ControllerNumber": 0,
            "ControllerLocation": 0,
        }
    ],
    "NetworkAdapters": [{"Name": "Network Adapter", "SwitchName": "Prod", "MacAddress": ""}],
}


def test_vm_shape_and_paths_turned_to_slashes() -> None:
    v = HvVm.parse(VM)
    assert (v.state, v.version, v.memory_bytes, v.uptime_s) == ("Running", "9.0", 8589934592, 3600)
    assert v.disks[0].path == "C:/ClusterStorage/Volume1/vm1/vm1.vhdx" and v.switches == ("Prod",)


@pytest.mark.parametrize(
    ("number", "name"),
    [
        (2, "Running"),
        (3, "Off"),
        (6, "Saved"),
        (9, "Paused"),
        (32773, "Saving"),
        (32779, "FastSaved"),
    ],
)
def test_vm_state_as_a_number(number: int, name: str) -> None:
    raw = {
        **VM,
        "State": number,
        "Disks": VM["Disks"][0],
        "NetworkAdapters": None,  # type: ignore[index]
        "UptimeSeconds": None,
        "Uptime": {"Ticks": 36_000_000_000, "TotalSeconds": 3600.0},
    }
    v = HvVm.parse(raw)
    assert v.state == name and len(v.disks) == 1 and v.switches == () and v.uptime_s == 3600


def test_vm_state_numbers_that_differ_between_versions_are_refused() -> None:
    with pytest.raises(HypervisorError) as info:
        HvVm.parse({**VM, "State": 32785})  # RunningCritical: 32783 or 32785 depending on build
    assert info.value.code == "E_HYPERV_PROTOCOL"


@pytest.mark.parametrize(
    ("name", "state"),
    [
        ("RunningCritical", VmState.RUNNING),  # running, its storage out of reach
        ("PausedCritical", VmState.PAUSED),
        ("SavedCritical", VmState.SAVED),
        ("OffCritical", VmState.STOPPED),
        ("FastSavingCritical", VmState.RUNNING),
        ("Hibernated", VmState.STOPPED),
        ("ComponentServicing", VmState.RUNNING),
        ("ForceReboot", VmState.RUNNING),
        ("Other", VmState.UNKNOWN),
    ],
)
def test_every_named_vm_state_folds_to_what_it_is(name: str, state: VmState) -> None:
    # The scripts send the state's name (State.ToString()), the same on every build.
    assert state_of(HvVm.parse({**VM, "State": name})) == state


def test_a_not_found_is_known_by_its_category_too() -> None:
    get_vm = {  # what Get-VM really throws for a name it does not know
        "message": "Hyper-V was unable to find a virtual machine with name 'web9'.",
        "fqid": "InvalidParameter,Microsoft.HyperV.PowerShell.Commands.GetVMCommand",
        "category": "InvalidArgument",
    }
    assert remote(get_vm).code == "E_HYPERV_NOT_FOUND"
    other = {**get_vm, "message": "The parameter is not valid: -Priority 7"}
    assert remote(other).code == "E_HYPERV_ERROR"


def test_dates_timespans_guids() -> None:
    assert w.date("/Date(1326441600000)/") == datetime(2012, 1, 13, 8, 0, tzinfo=UTC)
    assert w.date("\\/Date(1326441600000)\\/") == datetime(2012, 1, 13, 8, 0, tzinfo=UTC)
    assert w.date("2026-12-04T05:00:00.0000000Z".replace("0000000Z", "000+00:00")) is not None
    assert w.date(None) is None
    assert w.seconds({"Ticks": 15_000_000, "Days": 0, "TotalSeconds": 1.5}) == 1.5
    assert w.seconds({"Ticks": 15_000_000}) == 1.5
    assert w.text({"Guid": "abc"}) == "abc"
    with pytest.raises(HypervisorError):
        w.date("yesterday")


def test_cluster_shape_with_nested_owner_and_numbers() -> None:
    raw = {
        "Cluster": "CL01",
        "MaximumParallelMigrations": 2,
        "Nodes": {"Name": "HV01", "Id": "1", "State": 2, "DrainStatus": 2, "StatusInformation": 8},
        "VmGroups": [
            {
                "Name": "vm1",
                "Id": "6f",
                "OwnerNode": {"Name": "HV02", "State": 0},
                "State": 0,
                "Queued": False,
                "Priority": 2000,
            }
        ],
        "Csvs": {
            "Name": "Cluster Virtual Disk (Volume1)",
            "State": 2,
            "OwnerNode": "HV02",
            "Volumes": {"Path": "C:\\ClusterStorage\\Volume1", "Size": 10, "FreeSpace": 4},
        },
    }
    c = HvCluster.parse(raw)
    assert (c.nodes[0].state, c.nodes[0].drain_status) == ("Paused", "Completed")
    assert (c.groups[0].owner, c.groups[0].state) == ("HV02", "Online")
    assert c.volumes[0].path == "C:/ClusterStorage/Volume1" and c.volumes[0].free == 4


def test_jobs_final_states_and_success() -> None:
    assert HvJob.parse({"JobState": 7, "PercentComplete": 100, "ErrorCode": 0}).succeeded
    assert HvJob.parse({"JobState": 32768, "ErrorCode": 0}).succeeded  # with warnings
    failed = HvJob.parse({"JobState": 7, "ErrorCode": 32768, "ErrorDescription": "x"})
    assert failed.done and not failed.succeeded
    assert not HvJob.parse({"JobState": 4, "PercentComplete": 40}).done
    assert all(HvJob.parse({"JobState": s}).done for s in (8, 9, 10))


def test_compare_vm_report() -> None:
    report = {
        "OperationType": "MoveVirtualMachineAndStorage",
        "Destination": "HV02",
        "Incompatibilities": {
            "MessageId": 33012,
            "Message": "Could not find Ethernet switch 'Prod'.",
            "SourceType": "VMNetworkAdapter",
            "Source": "...",
        },
    }
    (x,) = incompatibilities(report)
    assert (x.message_id, x.source_type) == (33012, "VMNetworkAdapter")
    assert incompatibilities({"Incompatibilities": None}) == []


@pytest.mark.parametrize(
    ("message", "code"),
    [
        (
            "Virtual machine migration operation for 'VM001' failed at migration source 'HV01'. "
            "Failed to establish a connection with host 'HV02': No credentials are available "
            "in the security package (0x8009030E).",
            "E_HYPERV_NO_CREDENTIALS",
        ),
        ("The specified target is unknown or unreachable (0x80090303).", "E_HYPERV_SPN_MISSING"),
        (
            "... did not properly respond after a period of time (0x8007274C).",
            "E_HYPERV_MIGRATION_CONNECT",
        ),
        ("'vm1' could not initialize memory: Ran out of memory (0x8007000E).", "E_NO_MEMORY"),
        (
            "Failed to perform migration on virtual machine 'vm1' because virtual machine "
            "migration limit '2' was reached",
            "E_MIGRATION_LIMIT",
        ),
        (
            "Virtual machine 'vm1' is using processor-specific features not supported on host "
            "'HV02'.",
            "E_CPU_INCOMPATIBLE",
        ),
        ("The action 'Move' did not complete (0x80071398).", "E_CLUSTER_NOT_POSSIBLE_OWNER"),
        ("Something else entirely.", "E_HYPERV_ERROR"),
    ],
)
def test_failures_by_hresult_and_text(message: str, code: str) -> None:
    err = classify(message)
    assert err.code == code and err.detail == message and err.fix


def test_remote_error_uses_the_hresult_field_too() -> None:
    err = remote({"message": "No credentials", "hresult": -2146893042, "fqid": "x"})
    assert err.code == "E_HYPERV_NO_CREDENTIALS"
    assert (
        remote({"message": "gone", "fqid": "ObjectNotFound,Hyper-V"}).code == "E_HYPERV_NOT_FOUND"
    )
