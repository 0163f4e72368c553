"""Failover on the fake fleet: two liveness channels, proof before fencing, the guards.

The fake fleet plays the management channel; the storage heartbeats are real files
in a temporary directory, written as each host's service writes them; the watch
runs on a clock the test moves (a fake clock, not a mock).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.conftest import Api, wait_for
from tests.unit.test_api_maintenance import _where
from tests.unit.test_api_vms import _vm
from whimbrel.domain.vm import VmState
from whimbrel.drivers.fake import FakeFleet
from whimbrel.ha.heartbeat import Record, read_policy, write_atomic
from whimbrel.ha.watch import FailoverWatch
from whimbrel.ops import OpHostFailover


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class Fleet:
    """The fake fleet with heartbeats: ``step`` moves time, beats, polls and ticks."""

    def __init__(self, api: Api, fleet: FakeFleet, hb: Path | None) -> None:
        self.api, self.fleet, self.hb = api, fleet, hb
        self.clock = Clock()
        api.manager.monitor.stop_loop()  # the test moves time, polls and ticks itself
        watch = api.manager.monitor.watch
        assert watch is not None
        self.watch: FailoverWatch = watch
        watch.clock = watch.liveness.clock = self.clock
        self.beating = {"f1", "f2", "f3"}
        self.seq = 0
        self.isolated: set[str] = set()
        self.stopped: dict[str, dict[str, str]] = {}

    def beat(self) -> None:
        self.seq += 1
        for h in self.beating if self.hb is not None else ():
            assert self.hb is not None
            rec = Record(
                h,
                self.seq,
                f"t{self.seq}",
                isolated=h in self.isolated,
                isolated_since="t1" if h in self.isolated else "",
                stopped=self.stopped.get(h, {}),
                peers={p: h not in self.isolated for p in ("f1", "f2", "f3") if p != h},
            )
            self.hb.mkdir(parents=True, exist_ok=True)
            write_atomic(self.hb / f"{h}.json", rec.to_dict())

    def step(self, seconds: float = 1.0) -> list[str]:
        """``seconds`` pass, one beat and poll each second; return the failovers started."""
        started: list[str] = []
        for _ in range(int(seconds)):
            self.clock.now += 1
            self.beat()
            self.api.manager.monitor.poll_once()
            started += self.watch.tick()
        return started

    def host(self, name: str) -> dict[str, Any]:
        return dict(self.api.call("GET", f"/hosts/{name}").json())

    def failovers(self) -> list[dict[str, Any]]:
        jobs = self.api.call("GET", "/jobs").json()
        return [j for j in jobs if j["kind"] == "host.failover"]

    def finished(self, job: dict[str, Any]) -> dict[str, Any]:
        self.api.manager.runner.wait(job["id"])
        return dict(self.api.call("GET", f"/jobs/{job['id']}").json())


def _ha_fleet(api: Api, fleet: FakeFleet, hb: Path | None) -> Fleet:
    """f1 runs HA VMs a (low) and b (high) and plain VM c."""
    if hb is not None:
        api.ok("POST", "/clusters/c1/settings", {"heartbeat_dir": str(hb)})
    api.ok("POST", "/vms", _vm("a", "f1", ha=True))
    api.ok("POST", "/vms", _vm("b", "f1", ha=True))
    api.ok("POST", "/vms/a/ha", {"enabled": True, "priority": 1})
    api.ok("POST", "/vms/b/ha", {"enabled": True, "priority": 3})
    api.ok("POST", "/vms", _vm("c", "f1"))
    f = Fleet(api, fleet, hb)
    f.step(2)
    return f


def test_a_host_silent_on_management_but_beating_on_storage_is_left_alone(
    hosts: Api,
    fleet: FakeFleet,
    tmp_path: Path,
) -> None:
    f = _ha_fleet(hosts, fleet, tmp_path / "hb")
    policy = read_policy(tmp_path / "hb")
    assert policy is not None and policy.ha_vms == ("a", "b") and policy.detection_s == 15
    assert set(policy.members) == {"f1", "f2", "f3"}
    fleet.hosts["f1"].up = False  # a hung libvirtd: its VMs run on, its service beats
    assert f.step(60) == []
    h = f.host("f1")
    assert h["state"] == "not responding" and h["state_since"]
    assert "storage heartbeat seq" in h["state_reason"] and "left alone" in h["state_reason"]
    assert f.failovers() == []
    oc = hosts.call("GET", "/clusters/c1").json()["overcommit"]
    assert oc["after"] == "node f1 failed"  # a node failure recomputes the reserve
    fleet.hosts["f1"].up = True
    f.step(1)
    assert f.host("f1")["state"] == "connected"
    assert _where(hosts, "a") == ("f1", "running") and _where(hosts, "c") == ("f1", "running")


def test_lost_only_when_both_channels_are_silent_for_the_detection_time(
    hosts: Api,
    fleet: FakeFleet,
    tmp_path: Path,
) -> None:
    f = _ha_fleet(hosts, fleet, tmp_path / "hb")
    hosts.ok("POST", "/clusters/c1/settings", {"detection_s": 10})
    fleet.hosts["f1"].up = False
    f.beating.discard("f1")  # the host is dead: its service stopped too
    assert f.step(9) == []
    assert f.host("f1")["state"] == "not responding"
    assert "lost after 10 s" in f.host("f1")["state_reason"]
    assert f.step(2) == ["f1"]
    h = f.host("f1")
    assert h["state"] == "lost" and "both channels silent" in h["state_reason"]
    job = f.finished(f.failovers()[0])
    # No agent: not proven off, so nothing restarts (it could run twice).
    assert job["state"] == "Exception" and job["error"]["code"] == "E_FENCE_UNAVAILABLE"
    assert [s["name"] for s in job["steps"]] == ["verify", "fence", "restart"]
    assert job["steps"][0]["state"] == "undone"  # verified (still silent), then rolled back
    assert "both channels silent" in job["op"]["evidence"]
    assert _where(hosts, "a") == ("f1", "unknown") and _where(hosts, "b") == ("f1", "unknown")
    assert f.step(1) == []  # the next try waits for retry_s


def test_without_a_heartbeat_nothing_proves_a_host_dead(
    hosts: Api,
    fleet: FakeFleet,
) -> None:
    f = _ha_fleet(hosts, fleet, None)
    fleet.hosts["f1"].up = False
    assert f.step(120) == []
    h = f.host("f1")
    assert h["state"] == "not responding" and "nothing proves it dead" in h["state_reason"]


def test_failover_stops_when_the_heartbeat_moves_before_fencing(
    hosts: Api,
    fleet: FakeFleet,
    tmp_path: Path,
) -> None:
    f = _ha_fleet(hosts, fleet, tmp_path / "hb")
    hosts.ok("POST", "/hosts/f1/fence", {"agent": "lab", "options": {"namespace": "wbnosuch-f1"}})
    fleet.hosts["f1"].up = False
    f.step(1)
    # As if the watch had judged it lost on a sequence that has moved on since.
    job_id = hosts.manager.runner.submit(OpHostFailover("f1", "test", heartbeat_seq=1))
    job = f.finished({"id": job_id})
    assert job["state"] == "Exception" and job["error"]["code"] == "E_HOST_ALIVE", job["error"]
    assert "storage heartbeat moved" in job["error"]["cause"]
    assert [s["state"] for s in job["steps"]] == ["failed", "pending", "pending"]
    assert f.host("f1")["fenced_at"] is None


def test_an_isolated_host_that_stopped_its_ha_vms_is_not_fenced(
    hosts: Api,
    fleet: FakeFleet,
    tmp_path: Path,
) -> None:
    f = _ha_fleet(hosts, fleet, tmp_path / "hb")
    hosts.ok("POST", "/clusters/c1/settings", {"isolation_response": "shutdown"})
    assert read_policy(tmp_path / "hb") is not None
    f.step(1)
    policy = read_policy(tmp_path / "hb")
    assert policy is not None and policy.isolation_response == "shutdown"
    fleet.hosts["f1"].up = False
    f.isolated.add("f1")
    assert f.step(3) == []
    assert f.host("f1")["state"] == "isolated"
    assert "reaches none of its peers" in f.host("f1")["state_reason"]
    # Its service shut b down (the isolation response); a is still stopping.
    fleet.hosts["f1"].domains["b"].state = VmState.STOPPED
    f.stopped["f1"] = {"b": "t5"}
    assert f.step(1) == ["f1"]
    job = f.finished(f.failovers()[0])
    assert job["state"] == "Completed", job["error"]
    assert job["op"]["stopped"] == ["b"]
    assert "not fenced" in job["steps"][1]["result"]["proof"]
    host, state = _where(hosts, "b")
    assert host in ("f2", "f3") and state == "running"
    assert _where(hosts, "a") == ("f1", "unknown")  # still running there: left alone
    h = f.host("f1")
    assert h["state"] == "isolated" and h["fenced_at"] is None


def test_the_fence_cap_makes_a_second_lost_host_wait_for_confirmation(
    hosts: Api,
    fleet: FakeFleet,
    tmp_path: Path,
) -> None:
    f = _ha_fleet(hosts, fleet, tmp_path / "hb")
    from datetime import UTC, datetime

    from whimbrel.store.repo import get_host

    with hosts.manager.sessions.begin() as s:  # f3 was fenced a minute ago
        get_host(s, "f3").fenced_at = datetime.now(UTC)
    hosts.ok("POST", "/clusters/c1/settings", {"detection_s": 5})
    fleet.hosts["f1"].up = False
    f.beating.discard("f1")
    assert f.step(30) == []
    h = f.host("f1")
    assert h["state"] == "lost"
    assert "waits for 'whimbrel host fence confirm f1'" in h["state_reason"]
    assert "fence cap is reached" in h["state_reason"]
    assert f.failovers() == []
    # The administrator powers it off and says so: then it fails over.
    for d in fleet.hosts["f1"].domains.values():
        d.state = VmState.STOPPED
    job = hosts.ok("POST", "/hosts/f1/fence/confirm", {"off": True})
    assert [r["vm"] for r in job["steps"][2]["result"]["restarted"]] == ["b", "a"]
    assert f.host("f1")["state"] == "fenced"
    events = f.host("f1")["events"]
    assert events and "fenced" in events[-1]["event"]


def test_a_manager_that_loses_most_hosts_at_once_fences_nothing(
    hosts: Api,
    fleet: FakeFleet,
    tmp_path: Path,
) -> None:
    f = _ha_fleet(hosts, fleet, tmp_path / "hb")
    hosts.ok("POST", "/clusters/c1/settings", {"detection_s": 5})
    for h in ("f1", "f2"):
        fleet.hosts[h].up = False
        f.beating.discard(h)  # even storage looks dead from here
    assert f.step(30) == []
    assert f.watch.manager_isolated
    assert hosts.call("GET", "/ha").json()["manager_isolated"] is True
    assert "fences nothing" in f.host("f1")["state_reason"]
    assert f.failovers() == []


def test_a_host_back_from_failover_loses_its_stale_definitions(
    hosts: Api,
    fleet: FakeFleet,
    tmp_path: Path,
) -> None:
    f = _ha_fleet(hosts, fleet, tmp_path / "hb")
    fleet.hosts["f1"].up = False
    f.beating.discard("f1")
    f.step(2)
    for d in fleet.hosts["f1"].domains.values():
        d.state = VmState.STOPPED
    hosts.ok("POST", "/hosts/f1/fence/confirm", {"off": True})
    assert {"a", "b", "c"} <= set(fleet.hosts["f1"].domains)  # still defined there
    fleet.hosts["f1"].up = True
    f.beating.add("f1")
    f.step(1)
    h = f.host("f1")
    assert h["state"] == "connected"
    assert set(fleet.hosts["f1"].domains) == {"c"}  # its own VM stays, stopped
    assert "removed stale definitions of a (now on" in h["events"][-1]["event"]
    # A new VM of a name that ran there before can be created on it.
    hosts.ok("DELETE", "/vms/b", params={"force": True})
    hosts.ok("POST", "/vms", _vm("b", "f1"))
    wait_for(lambda: _where(hosts, "b") == ("f1", "running"))


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({"detection_s": 0}, "E_DETECTION_TIME_INVALID"),
        ({"detection_s": -5}, "E_DETECTION_TIME_INVALID"),
        ({"detection_s": 4}, "E_DETECTION_TIME_INVALID"),
        ({"isolation_response": "explode"}, "E_ISOLATION_RESPONSE_INVALID"),
        ({"heartbeat_dir": "relative/dir"}, "E_INVALID_PATH"),
        ({}, "E_NOTHING_TO_SET"),
    ],
)
def test_bad_cluster_settings_change_nothing(
    hosts: Api,
    body: dict[str, Any],
    code: str,
) -> None:
    before = hosts.call("GET", "/clusters/c1").json()
    assert hosts.error("POST", "/clusters/c1/settings", body)[1] == code
    assert hosts.call("GET", "/clusters/c1").json() == before


def test_bad_failover_guards_change_nothing(hosts: Api) -> None:
    before = hosts.call("GET", "/ha").json()
    assert before == {"fence_cap": 1, "fence_window_s": 900, "manager_isolated": False}
    for body, code in (
        ({"fence_cap": -1}, "E_FENCE_CAP_INVALID"),
        ({"fence_window_s": 5}, "E_FENCE_WINDOW_INVALID"),
        ({}, "E_NOTHING_TO_SET"),
    ):
        assert hosts.error("POST", "/ha", body)[1] == code
    assert hosts.call("GET", "/ha").json() == before
    hosts.ok("POST", "/ha", {"fence_cap": 2})
    assert hosts.call("GET", "/ha").json()["fence_cap"] == 2


def test_lease_refuses_a_second_start_until_the_host_is_really_off(
    hosts: Api,
    fleet: FakeFleet,
) -> None:
    f = _ha_fleet(hosts, fleet, None)
    fleet.hosts["f1"].up = False  # cut off: its VMs still run and hold their disks
    f.step(1)
    # The administrator says f1 is off, but it is only cut off: the leases refuse.
    job = hosts.job("POST", "/hosts/f1/fence/confirm")
    assert job["state"] == "Exception" and job["error"]["code"] == "E_FAILOVER_INCOMPLETE"
    assert "E_DISK_LOCKED" in job["error"]["cause"]
    assert [k["vm"] for k in job["progress"]["children"]] == ["b", "a"]  # priority order
    running = [
        (h.name, n)
        for h in fleet.hosts.values()
        for n, d in h.domains.items()
        if d.state == VmState.RUNNING
    ]
    assert sorted(running) == [("f1", "a"), ("f1", "b"), ("f1", "c")]  # never twice
    assert _where(hosts, "a") == ("f1", "unknown")
    # Now it really goes off: the restart succeeds, HA VMs only.
    for d in fleet.hosts["f1"].domains.values():
        d.state = VmState.STOPPED
    job = hosts.ok("POST", "/hosts/f1/fence/confirm")
    restarted = job["steps"][2]["result"]["restarted"]
    assert [r["vm"] for r in restarted] == ["b", "a"]
    for vm in ("a", "b"):
        host, state = _where(hosts, vm)
        assert host in ("f2", "f3") and state == "running"
    assert _where(hosts, "c") == ("f1", "unknown")
    assert hosts.error("POST", "/hosts/f1/fence/confirm")[1] == "E_NOTHING_TO_RECOVER"


def test_fence_settings_are_checked_and_masked(hosts: Api) -> None:
    for body, code in (
        ({"agent": "rm -rf /"}, "E_FENCE_INVALID"),
        ({"agent": "fence_nosuchagent"}, "E_FENCE_AGENT_MISSING"),
        ({"agent": "lab"}, "E_FENCE_INVALID"),
    ):
        assert hosts.error("POST", "/hosts/f1/fence", body)[1] == code
    assert hosts.call("GET", "/hosts/f1/fence").json() == {"agent": "", "options": {}}
    hosts.ok("POST", "/hosts/f1/fence", {"agent": "lab", "options": {"namespace": "wbx-f1"}})
    assert hosts.call("GET", "/hosts/f1/fence").json()["agent"] == "lab"
    assert hosts.error("POST", "/hosts/f1/fence/confirm")[1] == "E_HOST_CONNECTED"
