"""Migration through the REST API on the fake fleet: settings, preflight, moves, slots."""

from __future__ import annotations

import threading

from tests.conftest import Api
from tests.unit.test_api_vms import _vm
from whimbrel.drivers.fake import FakeFleet


def codes(api: Api, vm: str, **body: object) -> set[str]:
    plan = api.call("POST", f"/vms/{vm}/migrate/check", json=body).json()
    return {f["code"] for f in plan["findings"] if f["severity"] == "error"}


def test_settings_show_set_and_bad_values_change_nothing(hosts: Api) -> None:
    m = hosts.call("GET", "/hosts/f1/migration").json()
    assert (m["enabled"], m["max_live_migrations"], m["auth"], m["performance"]) == (
        True,
        2,
        "managed",
        "compression",
    )
    assert m["networks"] == ["10.9.1.0/24"]
    for body, code in (
        ({"auth": "kerberos"}, "E_MIGRATION_AUTH_INVALID"),
        ({"performance": "smb"}, "E_MIGRATION_PERFORMANCE_INVALID"),
        ({"max_live_migrations": 0}, "E_MIGRATION_LIMIT_INVALID"),
        ({"networks": ["10.1.2.300/24"]}, "E_MIGRATION_NETWORK_INVALID"),
        ({"networks": ["any", "10.0.0.0/8"]}, "E_MIGRATION_NETWORK_INVALID"),
        ({"addresses": ["10.0.0.5/24", "any"]}, "E_MIGRATION_NETWORK_INVALID"),
    ):
        assert hosts.error("POST", "/hosts/f1/migration", body)[1] == code
    assert hosts.call("GET", "/hosts/f1/migration").json() == m


def test_live_move_picks_the_migration_network(hosts: Api) -> None:
    hosts.ok("POST", "/vms", _vm())
    plan = hosts.call("POST", "/vms/v1/migrate/check", json={"to": "f2"}).json()
    assert plan["kind"] == "live" and plan["address"] == "10.9.1.2"
    job = hosts.ok("POST", "/vms/v1/migrate", {"to": "f2"})
    assert [s["name"] for s in job["steps"]] == ["preflight", "migrate", "record"]
    assert hosts.call("GET", "/vms/v1").json()["host"] == "f2"


def test_every_finding_is_returned_not_the_first(hosts: Api, fleet: FakeFleet) -> None:
    hosts.ok("POST", "/vms", _vm(disks=[{"size_mib": 64, "pool": "local"}]))
    hosts.ok("POST", "/hosts/f2/migration", {"enabled": False, "networks": ["10.200.0.0/24"]})
    fleet.hosts["f2"].networks = ()
    fleet.hosts["f2"].cpu_features = frozenset({"sse2"})
    hosts.ok("POST", "/hosts/f2/refresh")
    assert codes(hosts, "v1", to="f2") == {
        "E_MIGRATION_DISABLED",
        "E_NO_MIGRATION_NETWORK",
        "E_NETWORK_MISSING",
        "E_CPU_INCOMPATIBLE",
        "E_DISK_NOT_SHARED",
    }
    status, code = hosts.error("POST", "/vms/v1/migrate", {"to": "f2"})
    assert (status, code) == (409, "E_PREFLIGHT_FAILED")
    assert hosts.call("GET", "/vms/v1").json()["host"] == "f1"
    assert codes(hosts, "v1", to="f1") == {"E_SAME_HOST"}


def test_peer_auth_needs_the_destination_to_trust_the_source(hosts: Api, fleet: FakeFleet) -> None:
    hosts.ok("POST", "/vms", _vm())
    hosts.ok("POST", "/hosts/f1/migration", {"auth": "peer"})
    fleet.hosts["f2"].trusts = {"f3"}  # trusts f3 but not f1: one direction missing
    assert codes(hosts, "v1", to="f2") == {"E_PEER_UNTRUSTED"}
    fleet.hosts["f2"].trusts.add("f1")
    assert codes(hosts, "v1", to="f2") == set()


def test_ignore_demotes_a_finding_to_a_warning(hosts: Api, fleet: FakeFleet) -> None:
    hosts.ok("POST", "/vms", _vm())
    fleet.hosts["f2"].networks = ()
    hosts.ok("POST", "/hosts/f2/refresh")
    assert codes(hosts, "v1", to="f2") == {"E_NETWORK_MISSING"}
    assert codes(hosts, "v1", to="f2", ignore=["E_NETWORK_MISSING"]) == set()


def test_moves_beyond_the_host_limit_queue_and_never_fail(hosts: Api) -> None:
    hosts.ok("POST", "/hosts/f2/migration", {"max_live_migrations": 1})
    for n in ("q1", "q2", "q3"):
        hosts.ok("POST", "/vms", _vm(n, memory_mib=256))
    jobs: list[dict[str, object]] = []
    ts = [
        threading.Thread(
            target=lambda n=n: jobs.append(hosts.job("POST", f"/vms/{n}/migrate", {"to": "f2"}))
        )
        for n in ("q1", "q2", "q3")
    ]
    for t in ts:
        t.start()
    for t in ts:
        t.join()
    assert sorted(str(j["state"]) for j in jobs) == ["Completed"] * 3
    assert {hosts.call("GET", f"/vms/{n}").json()["host"] for n in ("q1", "q2", "q3")} == {"f2"}


def test_storage_move_and_quick_and_offline_on_the_fake(hosts: Api, fleet: FakeFleet) -> None:
    hosts.ok("POST", "/vms", _vm())
    job = hosts.ok(
        "POST", "/vms/v1/migrate", {"to": "f1", "include_storage": True, "storage_path": "local"}
    )
    assert job["op"]["move"] == "storage"
    assert hosts.call("GET", "/vms/v1").json()["disks"][0]["path"] == "/srv/f1/v1-vda.qcow2"
    assert "/srv/csv/v1-vda.qcow2" not in fleet.volumes
    job = hosts.ok(
        "POST", "/vms/v1/migrate", {"to": "f1", "include_storage": True, "storage_path": "csv"}
    )
    job = hosts.ok("POST", "/vms/v1/migrate", {"to": "f2", "quick": True})
    assert job["op"]["move"] == "quick" and fleet.hosts["f2"].domains["v1"].state == "running"
    hosts.ok("POST", "/vms/v1/stop", {"force": True})
    job = hosts.ok("POST", "/vms/v1/migrate", {"to": "f3"})
    assert job["op"]["move"] == "offline" and "v1" in fleet.hosts["f3"].domains


def test_a_policy_out_of_range_is_refused_and_nothing_moves(hosts: Api) -> None:
    hosts.ok("POST", "/vms", _vm())
    for bad in (
        {"max_downtime_ms": -5},
        {"max_downtime_ms": 0},
        {"downtime_ms": 0},
        {"timeout_s_per_gib": 0},
        {"bandwidth_mib_s": -1},
    ):
        status, code = hosts.error("POST", "/vms/v1/migrate", {"to": "f2", **bad})
        assert (status, code) == (400, "E_INVALID_POLICY"), bad
    assert hosts.call("GET", "/vms/v1").json()["host"] == "f1"
    assert [j for j in hosts.call("GET", "/jobs").json() if j["kind"] == "vm.migrate"] == []
