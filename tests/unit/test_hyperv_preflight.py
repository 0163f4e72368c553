"""Each Hyper-V finding on the two-cluster estate: found before anything changes, and,
when overridden with --ignore, the host's own failure and a clean rollback."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from tests.conftest import Api
from tests.hyperv_double.estate import HyperVEstate
from tests.unit.hyperv_estate import new_vm
from tests.unit.test_api_migration import codes
from tests.unit.test_hyperv_flows import _at_home
from whimbrel.ad.directory import TRUSTED_TO_AUTH_FOR_DELEGATION


def _drop_delegation(e: HyperVEstate, src: str, dst: str) -> None:
    c = e.directory.computer(src)
    keep = [s for s in c.delegate_to if dst.lower() not in s.lower()]
    e.directory.set_delegation(src, keep, c.uac)


def _kerberos_only(e: HyperVEstate, host: str) -> None:
    c = e.directory.computer(host)
    e.directory.set_delegation(host, list(c.delegate_to), c.uac & ~TRUSTED_TO_AUTH_FOR_DELEGATION)


def _beta(**kw: object) -> Callable[[HyperVEstate], None]:
    def change(e: HyperVEstate) -> None:
        for n in ("HV03", "HV04"):
            for k, v in kw.items():
                setattr(e.hosts[n], k, v)

    return change


# scenario: (change, finding, the host's failure when the finding is overridden)
SCENARIOS: dict[str, tuple[Callable[[HyperVEstate], None], str, str]] = {
    "delegation missing, forward": (
        lambda e: [_drop_delegation(e, "HV01", n) for n in ("HV03", "HV04")],
        "E_DELEGATION_MISSING",
        "E_HYPERV_NO_CREDENTIALS",
    ),
    "delegation missing, way back only": (
        lambda e: [_drop_delegation(e, n, "HV01") for n in ("HV03", "HV04")],
        "E_DELEGATION_MISSING",
        "",
    ),
    "kerberos only (the walkthrough's choice)": (
        lambda e: _kerberos_only(e, "HV01"),
        "E_DELEGATION_KERBEROS_ONLY",
        "E_HYPERV_NO_CREDENTIALS",
    ),
    "destination SPN missing": (
        lambda e: [
            e.directory.computers.__setitem__(
                n, replace(e.directory.computer(n), spns=(f"HOST/{n}",))
            )
            for n in ("HV03", "HV04")
        ],
        "E_HYPERV_SPN_MISSING",
        "",
    ),
    "configuration version too new": (
        _beta(versions=["8.0", "9.0"]),
        "E_CONFIG_VERSION_UNSUPPORTED",
        "E_HYPERV_ERROR",
    ),
    "switch missing (Compare-VM 33012)": (
        _beta(switches=["Backbone"]),
        "E_NETWORK_MISSING",
        "E_HYPERV_ERROR",
    ),
    "migration disabled on the destination": (
        _beta(enabled=False),
        "E_MIGRATION_DISABLED",
        "E_HYPERV_MIGRATION_CONNECT",
    ),
    "no common migration network": (
        _beta(subnets=["10.10.99.0/24"]),
        "E_NO_MIGRATION_NETWORK",
        "E_HYPERV_MIGRATION_CONNECT",
    ),
    "other processor vendor": (
        _beta(vendor="AuthenticAMD", cpu="AMD EPYC 9354"),
        "E_CPU_INCOMPATIBLE",
        "E_CPU_INCOMPATIBLE",
    ),
}


@pytest.mark.parametrize("scenario", list(SCENARIOS))
def test_finding_then_host_failure_and_rollback(
    scenario: str,
    hv: Api,
    estate: HyperVEstate,
) -> None:
    change, finding, failure = SCENARIOS[scenario]
    new_vm(hv, "web1", "hv01")
    change(estate)
    assert finding in codes(hv, "web1", to_cluster="beta")
    before = len(estate.calls)
    assert hv.error("POST", "/vms/web1/migrate", {"to_cluster": "beta"})[1] == "E_PREFLIGHT_FAILED"
    changing = {"cluster_role_remove", "vm_migrate_wmi", "vm_move", "cluster_role_add"}
    assert not [c for c in estate.calls[before:] if c[1] in changing]
    _at_home(hv, estate)
    if not failure:
        return
    # Overridden, the move runs and fails at the host, the way Hyper-V fails it.
    all_errors = sorted(codes(hv, "web1", to_cluster="beta"))
    job = hv.job("POST", "/vms/web1/migrate", {"to_cluster": "beta", "ignore": all_errors})
    assert job["state"] == "Exception" and job["rollback"] == "clean", job
    assert job["error"]["code"] == failure, job["error"]
    _at_home(hv, estate)


def test_credssp_remote_start_and_credential_guard(
    hv: Api,
    estate: HyperVEstate,
) -> None:
    new_vm(hv, "web1", "hv01")
    for h in ("hv01", "hv02", "hv03", "hv04"):  # Set-VMHost through Whimbrel's own setting
        hv.ok("POST", f"/hosts/{h}/migration", {"auth": "managed"})
    assert {h.auth for h in estate.hosts.values()} == {"CredSSP"}
    assert "E_CREDSSP_NOT_SIGNED_IN" in codes(hv, "web1", to_cluster="beta")
    estate.hosts["HV01"].credential_guard = True
    found = codes(hv, "web1", to_cluster="beta")
    assert {"E_CREDSSP_NOT_SIGNED_IN", "E_CREDENTIAL_GUARD_CREDSSP"} <= found
    job = hv.job("POST", "/vms/web1/migrate", {"to_cluster": "beta", "ignore": sorted(found)})
    assert job["error"]["code"] == "E_HYPERV_NO_CREDENTIALS" and job["rollback"] == "clean"
    _at_home(hv, estate)
    # Mixed: one side Kerberos, the other CredSSP.
    hv.ok("POST", "/hosts/hv01/migration", {"auth": "peer"})
    assert "E_MIGRATION_AUTH_MISMATCH" in codes(hv, "web1", to_cluster="beta")
