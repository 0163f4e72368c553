"""The storage heartbeat service on this machine: real files, real processes.

A stand-in guest is a real process whose executable is named like QEMU (a copy
of sleep) and whose command line names a VM and a disk on the shared storage,
which is all the service looks at.  Peers are probed through a fake probe (no
traffic leaves the machine) and time moves on a fake clock.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import wait_for
from whimbrel.ha.heartbeat import Policy, read_record, write_policy
from whimbrel.ha.hostd import HeartbeatService, guests, reachable


class Clock:
    def __init__(self) -> None:
        self.now = 50.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def qemu(tmp_path: Path) -> Iterator[object]:
    """Start stand-in guests: ``qemu(name, disk)`` returns the process."""
    # A process's name is the name it was started by: a link named like QEMU.
    exe = tmp_path / "bin" / "qemu-system-x86_64"
    exe.parent.mkdir()
    exe.symlink_to(Path(sys.executable).resolve())
    procs: list[subprocess.Popen[bytes]] = []

    def start(name: str, disk: Path) -> subprocess.Popen[bytes]:
        script = "import time; time.sleep(600)"  # the rest of the line is only its argv
        args = ["-name", f"guest={name},debug-threads=on", "-drive", str(disk)]
        p = subprocess.Popen([str(exe), "-c", script, *args])
        procs.append(p)
        wait_for(lambda: any(g.pid == p.pid for g in guests()), timeout=5, period=0.05)
        return p

    yield start
    for p in procs:
        p.kill()
        p.wait()


def _service(storage: Path, up: set[str], clock: Clock) -> HeartbeatService:
    return HeartbeatService("h1", storage, probe=lambda addr: addr in up, clock=clock)


def test_each_beat_renews_the_record_with_a_growing_sequence(tmp_path: Path) -> None:
    clock = Clock()
    svc = _service(tmp_path, set(), clock)
    first = svc.beat()
    second = svc.beat()
    assert second.seq == first.seq + 1
    on_disk = read_record(tmp_path / "heartbeat", "h1")
    assert on_disk is not None and on_disk.seq == second.seq and not on_disk.isolated


def test_reaching_no_peer_makes_the_host_isolated_and_one_answer_ends_it(tmp_path: Path) -> None:
    clock = Clock()
    write_policy(tmp_path / "heartbeat", Policy("c", 15, "leave", {"h1": "a1", "h2": "a2"}))
    up: set[str] = set()
    svc = HeartbeatService("h1", tmp_path, probe=lambda addr: addr in up, clock=clock)
    rec = svc.beat()
    assert rec.isolated and rec.peers == {"h2": False} and rec.isolated_since
    up.add("a2")
    assert not svc.beat().isolated


def test_a_refused_connection_is_an_answer() -> None:
    # Nothing listens on this loopback port: refused, so the network works.
    assert reachable("127.0.0.1", port=1)


def test_isolation_response_stops_the_ha_vms_and_reports_them_once_gone(
    tmp_path: Path, qemu: object
) -> None:
    clock = Clock()
    disk = tmp_path / "images" / "vm1.qcow2"
    policy = Policy("c", 6, "power-off", {"h1": "a1", "h2": "a2"}, ("vm1",))
    write_policy(tmp_path / "heartbeat", policy)
    ha = qemu("vm1", disk)  # type: ignore[operator]
    plain = qemu("vm2", tmp_path / "images" / "vm2.qcow2")  # type: ignore[operator]
    svc = HeartbeatService("h1", tmp_path, probe=lambda _a: False, clock=clock)
    assert svc.beat().isolated and ha.poll() is None  # not before the isolation time
    clock.now += policy.isolation_s
    svc.beat()
    wait_for(lambda: ha.poll() is not None, timeout=10)
    rec = wait_for(lambda: (r := svc.beat()).stopped and r, timeout=10)
    assert set(rec.stopped) == {"vm1"}
    assert plain.poll() is None  # not HA: left running


def test_leave_keeps_the_ha_vms_running(tmp_path: Path, qemu: object) -> None:
    clock = Clock()
    write_policy(
        tmp_path / "heartbeat", Policy("c", 6, "leave", {"h1": "a1", "h2": "a2"}, ("vm1",))
    )
    ha = qemu("vm1", tmp_path / "images" / "vm1.qcow2")  # type: ignore[operator]
    svc = HeartbeatService("h1", tmp_path, probe=lambda _a: False, clock=clock)
    for _ in range(5):
        clock.now += 5
        assert svc.beat().isolated
    time.sleep(0.3)
    assert ha.poll() is None and not svc.beat().stopped


def test_a_host_that_cannot_renew_its_heartbeat_kills_its_writers_in_time(
    tmp_path: Path, qemu: object
) -> None:
    clock = Clock()
    storage = tmp_path / "shared"
    write_policy(storage / "heartbeat", Policy("c", 10, "leave", {}))
    on_shared = qemu("vm1", storage / "images" / "vm1.qcow2")  # type: ignore[operator]
    local = qemu("vm2", tmp_path / "local" / "vm2.qcow2")  # type: ignore[operator]
    svc = HeartbeatService("h1", storage, probe=lambda _a: True, clock=clock)
    svc.beat()
    assert svc.policy.self_fence_s == 6.0  # 60 % of the detection time
    # The heartbeat can no longer be written (its directory became a file).
    shutil.rmtree(storage / "heartbeat")
    (storage / "heartbeat").write_text("")
    clock.now += 5
    svc.beat()
    assert on_shared.poll() is None  # not yet
    clock.now += 1.5
    svc.beat()
    assert on_shared.wait(5) is not None  # killed: it could be started elsewhere soon
    assert local.poll() is None  # its disk is not on the shared storage
    assert set(svc.self_fenced) == {"vm1"}
