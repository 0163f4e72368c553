"""Checks made at submission are made again at the step that needs them, under the
lock that keeps them true: two creates that each fit alone never over-commit a host."""

from __future__ import annotations

from tests.conftest import Api
from tests.unit.test_api_vms import _vm
from whimbrel.drivers.fake import FakeFleet


def test_two_creates_that_each_fit_alone_do_not_overcommit_the_host(
    hosts: Api,
    fleet: FakeFleet,
) -> None:
    big = {"memory_mib": 2500}
    first = hosts.call("POST", "/vms", json=_vm("big1", "f1", **big)).json()["id"]
    second = hosts.call("POST", "/vms", json=_vm("big2", "f1", **big)).json()["id"]
    jobs = [hosts.manager.runner.wait(j) for j in (first, second)]
    assert sorted(j.state for j in jobs) == ["Completed", "Exception"]
    failed = next(j for j in jobs if j.state == "Exception")
    assert failed.error is not None and failed.error["code"] == "E_NO_MEMORY"
    assert "promised to the VMs running there" in failed.error["cause"]
    assert failed.rollback == "clean"
    names = [v["name"] for v in hosts.call("GET", "/vms").json()]
    assert len(names) == 1  # the other left nothing behind: no row, no domain, no disk
    assert set(fleet.hosts["f1"].domains) == set(names)
