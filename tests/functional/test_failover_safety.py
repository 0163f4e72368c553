"""Failover never causes an outage: proofs in the real lab.

A hung or restarted libvirtd, a manager cut from every host, a host cut from its
peers: no host is fenced, every VM keeps running where it ran, with the same
writer on its disk.  A host cut from its storage stops its own VMs before anyone
else starts them; an isolated host with the isolation response "shutdown" gives
its HA VMs up, and they restart elsewhere only after their old copies stopped.
Two hosts lost at once with a fence cap of 1: one fails over, the other waits.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from datetime import UTC, datetime
from typing import Any

import pytest

from tests.conftest import Api, wait_for
from tests.functional.test_ha import _failover_jobs, _recovered, ha_vm, where
from tests.functional.test_lifecycle import lab_vm, wait_heartbeat
from whimbrel.errors import LabError
from whimbrel.lab import faults
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab


def _states(api: Api, host: str, seconds: float) -> set[str]:
    """Every state ``host`` shows during ``seconds``, sampled twice a second."""
    seen: set[str] = set()
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        seen.add(api.call("GET", f"/hosts/{host}").json()["state"])
        time.sleep(0.5)
    return seen


def _untouched(api: Api, before: dict[str, dict[str, Any]], host: str) -> None:
    """Each VM still runs on ``host`` in the same boot: same writer, disk sequence on."""
    for vm, hb0 in before.items():
        wait_for(lambda vm=vm: where(api, vm) == (host, "running"), timeout=60)
        hb = wait_heartbeat(api, vm, above=hb0["counter"])
        assert hb["writer"] == hb0["writer"], (vm, hb0, hb)  # never restarted
        assert hb["uptime_s"] >= hb0["uptime_s"] and hb["disk_seq"] > hb0["disk_seq"], (vm, hb)
        assert not hb.get("bad"), (vm, hb)


def _exit_of(lab: Lab, host: str, vm: str) -> list[datetime]:
    """A list that gets the time the VM's QEMU process on ``host`` exits."""
    pid = faults.guest_pid(lab, host, vm)
    assert pid is not None
    exited: list[datetime] = []

    def watch() -> None:
        while os.path.exists(f"/proc/{pid}"):
            time.sleep(0.05)
        exited.append(datetime.now(UTC))

    threading.Thread(target=watch, daemon=True).start()
    return exited


def _no_failover(api: Api) -> None:
    kinds = [j["kind"] for j in api.call("GET", "/jobs").json()]
    assert "host.failover" not in kinds and "vm.recover" not in kinds, kinds
    hosts = api.call("GET", "/hosts").json()
    assert all(h["fenced_at"] is None for h in hosts), hosts


def test_a_hung_libvirtd_is_not_a_dead_host(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    ha_vm(api, "s-ha", "h1", 3)
    api.ok("POST", "/vms", lab_vm("s-plain", "h1", "local"))
    before = {vm: wait_heartbeat(api, vm) for vm in ("s-ha", "s-plain")}
    t0 = time.monotonic()
    faults.freeze_libvirtd(lab, "h1")
    try:
        h = wait_for(
            lambda: (h := api.call("GET", "/hosts/h1").json())["state"] != "connected" and h,
            timeout=30,
        )
        noticed = time.monotonic() - t0
        seen = _states(api, "h1", 30 - noticed)
    finally:
        faults.freeze_libvirtd(lab, "h1", frozen=False)
    print(f"\nlibvirtd frozen 30 s: not responding after {noticed:.1f} s; states {seen}")
    assert seen == {"not responding"}, seen
    assert "storage heartbeat" in h["state_reason"] and "left alone" in h["state_reason"]
    wait_for(lambda: api.call("GET", "/hosts/h1").json()["state"] == "connected", timeout=60)
    _untouched(api, before, "h1")
    _no_failover(api)


def test_a_restarted_libvirtd_is_not_a_dead_host(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    ha_vm(api, "r-ha", "h1", 3)
    api.ok("POST", "/vms", lab_vm("r-plain", "h1", "local"))
    before = {vm: wait_heartbeat(api, vm) for vm in ("r-ha", "r-plain")}
    # Down for longer than the detection time: only the storage heartbeat tells.
    done = threading.Thread(target=faults.restart_libvirtd, args=(lab, "h1", 25.0))
    done.start()
    seen = _states(api, "h1", 20)
    done.join()
    print(f"\nlibvirtd killed, restarted after 25 s: states {seen}")
    assert "lost" not in seen and "fenced" not in seen and "not responding" in seen, seen
    wait_for(lambda: api.call("GET", "/hosts/h1").json()["state"] == "connected", timeout=60)
    _untouched(api, before, "h1")
    _no_failover(api)


def test_a_manager_cut_from_every_host_fences_nothing(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    ha_vm(api, "m-ha", "h2", 3)
    before = {"m-ha": wait_heartbeat(api, "m-ha")}
    faults.cut_manager(lab)
    try:
        wait_for(lambda: api.call("GET", "/ha").json()["manager_isolated"], timeout=40)
        seen = _states(api, "h2", 25)
        hosts = api.call("GET", "/hosts").json()
    finally:
        faults.cut_manager(lab, cut=False)
    print(f"\nmanager cut off: h2 states {seen}")
    assert {h["state"] for h in hosts} == {"not responding"}, hosts
    assert "lost" not in seen and "fenced" not in seen
    for h in lab.spec.hosts:
        wait_for(
            lambda h=h: api.call("GET", f"/hosts/{h.name}").json()["state"] == "connected",
            timeout=60,
        )
    _untouched(api, before, "h2")
    _no_failover(api)


def test_an_isolated_host_keeps_its_vms_or_gives_them_up_cleanly(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    ha_vm(api, "i-ha", "h2", 3)
    before = {"i-ha": wait_heartbeat(api, "i-ha", above=2)}
    # Isolation response "leave" (the default): it keeps running, nobody starts it.
    lab.isolate("h2")
    try:
        h = wait_for(
            lambda: (h := api.call("GET", "/hosts/h2").json())["state"] == "isolated" and h,
            timeout=40,
        )
        assert "reaches none of its peers" in h["state_reason"]
        seen = _states(api, "h2", 20)
    finally:
        lab.isolate("h2", cut=False)
    assert seen == {"isolated"}, seen
    wait_for(lambda: api.call("GET", "/hosts/h2").json()["state"] == "connected", timeout=60)
    _untouched(api, before, "h2")
    _no_failover(api)

    # Isolation response "shutdown": the host shuts its HA VM down, then it restarts on h1.
    api.ok("POST", "/clusters/alpha/settings", {"isolation_response": "shutdown"})
    seq = wait_heartbeat(api, "i-ha")["disk_seq"]
    exited = _exit_of(lab, "h2", "i-ha")
    t0 = time.monotonic()
    lab.isolate("h2")
    try:
        wait_for(lambda: _recovered(api, "i-ha", "h2"), timeout=120)
        restarted = time.monotonic() - t0
        job_id = _failover_jobs(api, "h2")[0]["id"]
        api.manager.runner.wait(job_id)
        job = api.call("GET", f"/jobs/{job_id}").json()
        assert job["state"] == "Completed", job["error"]
        assert "not fenced" in job["steps"][1]["result"]["proof"]
        child = job["steps"][2]["result"]["restarted"][0]["job"]
        start = next(
            s for s in api.call("GET", f"/jobs/{child}").json()["steps"] if s["name"] == "start"
        )
        assert exited and exited[0].isoformat() <= start["started_at"], (exited, start)
        hb = wait_heartbeat(api, "i-ha")
        assert hb["disk_seq"] > seq and not hb.get("bad"), hb  # one writer, sequence on
        assert api.call("GET", "/hosts/h2").json()["fenced_at"] is None
        print(f"\nisolated with response shutdown -> running on h1: {restarted:.1f} s")
    finally:
        lab.isolate("h2", cut=False)
        api.ok("POST", "/clusters/alpha/settings", {"isolation_response": "leave"})
    h2 = wait_for(
        lambda: (h := api.call("GET", "/hosts/h2").json())["state"] == "connected" and h,
        timeout=60,
    )
    assert "removed stale definitions of i-ha" in h2["events"][-1]["event"]


def test_a_host_that_loses_its_storage_stops_its_vms_before_they_start_elsewhere(
    lab: Lab, lab_api: Api
) -> None:
    api = lab_api
    ha_vm(api, "l-ha", "h2", 3)
    seq = wait_heartbeat(api, "l-ha", above=2)["disk_seq"]
    exited = _exit_of(lab, "h2", "l-ha")
    # Its storage lease and its links go: the manager sees nothing, the host lives on.
    faults.cut_storage(lab, "h2")
    lab.isolate("h2")
    try:
        wait_for(lambda: _recovered(api, "l-ha", "h2"), timeout=120)
        job_id = _failover_jobs(api, "h2")[0]["id"]
        api.manager.runner.wait(job_id)
        fence = api.call("GET", f"/jobs/{job_id}").json()["steps"][1]
        assert exited, "the old copy still runs"
        assert exited[0].isoformat() < fence["started_at"], (exited, fence)  # self-fenced first
        assert "self-fence: killed l-ha" in faults.heartbeat_log(lab, "h2")
        hb = wait_heartbeat(api, "l-ha")
        assert hb["disk_seq"] > seq and not hb.get("bad"), hb
    finally:
        with contextlib.suppress(LabError):  # gone with the host if it was fenced
            faults.cut_storage(lab, "h2", cut=False)
        lab.isolate("h2", cut=False)
        lab.start_host("h2")  # the lab agent fenced it
    wait_for(lambda: api.call("GET", "/hosts/h2").json()["state"] == "connected", timeout=90)


def test_two_hosts_lost_at_once_with_a_cap_of_one(lab: Lab, lab_api: Api) -> None:
    api = lab_api
    ha_vm(api, "c-alpha", "h2", 3)
    api.ok("POST", "/vms", lab_vm("c-beta", "h4", "csv-beta", ha=True))
    api.ok("POST", "/vms/c-beta/ha", {"enabled": True, "priority": 3})
    for vm in ("c-alpha", "c-beta"):
        wait_heartbeat(api, vm)
    assert api.call("GET", "/ha").json()["fence_cap"] == 1
    since = max((j["id"] for j in api.call("GET", "/jobs").json()), default=0)
    lab.kill_host("h2")
    lab.kill_host("h4")
    try:
        first = wait_for(
            lambda: _recovered(api, "c-alpha", "h2") or _recovered(api, "c-beta", "h4"),
            timeout=90,
        )
        other = "h4" if first["name"] == "c-alpha" else "h2"
        waiting = wait_for(
            lambda: (
                "fence confirm" in (h := api.call("GET", f"/hosts/{other}").json())["state_reason"]
                and h
            ),
            timeout=30,
        )
        assert waiting["state"] == "lost" and "fence cap is reached" in waiting["state_reason"]
        time.sleep(10)
        # It waits, and says so (earlier tests' failovers of the same host do not count).
        assert [j for j in _failover_jobs(api, other) if j["id"] > since] == []
        job = api.ok("POST", f"/hosts/{other}/fence/confirm")
        assert job["op"]["approved"] is True and job["steps"][1]["result"]["agent"] == "lab"
        vm = "c-beta" if other == "h4" else "c-alpha"
        wait_for(lambda: _recovered(api, vm, other), timeout=60)
    finally:
        for h in ("h2", "h4"):
            lab.start_host(h)
    for h in ("h2", "h4"):
        wait_for(lambda h=h: api.call("GET", f"/hosts/{h}").json()["state"] == "connected", 90)
