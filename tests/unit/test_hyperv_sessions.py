"""Where the Hyper-V scripts run and what they read back: the cluster cmdlets that cannot run
remotely without CredSSP, a session configuration the node lacks, a retry that must not read
the attempt before it (a finished job stays listed 5 minutes), a job removed before it was
read, and HRESULTs in their Win32 form."""

from __future__ import annotations

import time
from collections.abc import Iterator

import pytest

from tests.conftest import Api
from tests.hyperv_double.estate import DVm, HyperVEstate
from tests.unit.hyperv_estate import CSV, NODES, build, new_vm
from tests.unit.test_api_migration import codes
from whimbrel.config import Settings
from whimbrel.drivers.hyperv import moves
from whimbrel.drivers.hyperv.errors import classify
from whimbrel.drivers.hyperv.transport import parse_uri
from whimbrel.errors import HypervisorError, InsufficientResources, InvalidInput
from whimbrel.manager import Manager

GIB = 1 << 30


@pytest.fixture
def default_session(settings: Settings) -> Iterator[tuple[Api, HyperVEstate]]:
    """Both clusters registered with Kerberos in WinRM's default session (no configuration=)."""
    estate = build()
    m = Manager(settings, opener=estate.open)
    m.start()
    api = Api(m)
    for cluster, nodes in NODES.items():
        shared = [CSV[cluster].replace("\\", "/")]
        api.ok("POST", "/clusters", {"name": cluster, "shared_paths": shared})
        for n in nodes:
            uri = estate.uri(n, configuration="")
            api.ok("POST", "/hosts", {"name": n.lower(), "uri": uri, "cluster": cluster})
    yield api, estate
    m.stop()


def test_cluster_cmdlets_in_a_remote_session_are_found_before_they_fail(
    default_session: tuple[Api, HyperVEstate],
) -> None:
    api, estate = default_session
    new_vm(api, "web1", "hv01", ha=False)
    job = api.job("POST", "/vms/web1/ha", {"enabled": True, "priority": 3})
    assert job["state"] == "Exception" and job["error"]["code"] == "E_HYPERV_ACCESS_DENIED"
    assert "configuration=" in job["error"]["fix"]
    assert "web1" not in estate.clusters["CL-ALPHA"].groups
    # A role made outside Whimbrel: its move inside the cluster is found before it runs.
    estate.clusters["CL-ALPHA"].groups["web1"] = 2000
    estate.hosts["HV01"].vms["web1"].clustered = True
    assert "E_CLUSTER_CMDLET_REMOTE" in codes(api, "web1", to="hv02")
    job = api.job(
        "POST", "/vms/web1/migrate", {"to": "hv02", "ignore": ["E_CLUSTER_CMDLET_REMOTE"]}
    )
    assert job["error"]["code"] == "E_HYPERV_ACCESS_DENIED", job["error"]
    assert estate.where("web1").name == "HV01"  # type: ignore[union-attr]
    assert estate.hosts["HV01"].vms["web1"].state == "Running"


def test_in_the_session_configuration_the_same_move_needs_no_finding(hv: Api) -> None:
    new_vm(hv, "web1", "hv01")
    assert codes(hv, "web1", to="hv02") == set()
    hv.ok("POST", "/vms/web1/migrate", {"to": "hv02"})
    assert hv.call("GET", "/vms/web1").json()["host"] == "hv02"


def test_a_session_configuration_the_node_lacks(hv: Api, estate: HyperVEstate) -> None:
    estate.add_host("HV05", cluster="CL-ALPHA", configurations=set())
    job = hv.job("POST", "/hosts", {"name": "hv05", "uri": estate.uri("HV05"), "cluster": "alpha"})
    assert job["error"]["code"] == "E_HYPERV_SESSION_CONFIGURATION", job["error"]
    assert "Register-PSSessionConfiguration -Name Whimbrel" in job["error"]["fix"]
    assert hv.call("GET", "/hosts/hv05").status_code == 404


def _role(estate: HyperVEstate, name: str = "web1") -> DVm:
    vm = DVm(name, "6A1C4D2E-0000-4000-8000-000000000001", 4 * GIB, [], ["Prod"],
             state="Running", clustered=True)  # fmt: skip
    return estate.add_vm("HV01", vm)


def test_a_retry_does_not_read_the_failure_of_the_attempt_before() -> None:
    estate = build()
    _role(estate)
    drv = estate.open(estate.uri("HV01"))
    estate.hosts["HV02"].memory = 10 * GIB  # 2 GiB free: the first attempt runs out
    with pytest.raises(InsufficientResources):
        moves.cluster_move(drv, drv.vm("web1"), "hv02", "Live", 4 * GIB)
    estate.hosts["HV02"].memory = 256 * GIB
    # The failed job stays listed; the cluster's new job appears only a moment later.
    estate.cluster_lag_s = 0.1
    moves.cluster_move(drv, drv.vm("web1"), "hv02", "Live", 4 * GIB)
    assert estate.where("web1").name == "HV02"  # type: ignore[union-attr]


@pytest.mark.parametrize("fits", [True, False])
def test_a_job_removed_before_it_was_read(fits: bool) -> None:
    """A manager that stalls past TimeBeforeRemoval finds no job: where the VM is decides."""
    estate = build()
    _role(estate).clustered = False
    estate.hosts["HV03"].memory = 256 * GIB if fits else 10 * GIB
    drv = estate.open(estate.uri("HV01"))
    r = drv.call("vm_migrate_wmi", Name="web1", DestinationHost="hv03.corp.example")
    estate.job_kept_s = 0.0
    time.sleep(estate.job_s * 2)
    drv.call("vm_list")  # the job ends; the next look finds it removed
    if fits:
        moves.wait_job(drv, "web1", r["Job"], 4 * GIB)
        assert estate.where("web1").name == "HV03"  # type: ignore[union-attr]
        return
    with pytest.raises(HypervisorError) as info:
        moves.wait_job(drv, "web1", r["Job"], 4 * GIB)
    assert info.value.code == "E_HYPERV_MIGRATION_FAILED"
    assert estate.where("web1").name == "HV01"  # type: ignore[union-attr]


@pytest.mark.parametrize(
    "text", ["failed (0x800713AB).", "failed (0x000013AB).", "failed (0x000013ab)."]
)
def test_win32_and_hresult_forms_are_one_code(text: str) -> None:
    assert classify(text).code == "E_CLUSTER_NETWORK_UNAVAILABLE"
    assert classify("x", hresult=5035).code == "E_CLUSTER_NETWORK_UNAVAILABLE"


def test_configuration_in_the_uri() -> None:
    c = parse_uri("hyperv://hv01?auth=kerberos&configuration=Whimbrel")
    assert c.configuration == "Whimbrel" and c.runs_on_host
    assert not parse_uri("hyperv://hv01?auth=kerberos").runs_on_host
    assert parse_uri("hyperv://hv01?auth=credssp&user=a&password_file=/p").runs_on_host
    for bad in ("a b", "x;Get-Process", "1abc", "x" * 80):
        with pytest.raises(InvalidInput):
            parse_uri(f"hyperv://hv01?auth=kerberos&configuration={bad}")
