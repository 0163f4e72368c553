"""Failover against the physical limit: a dead host's HA VM back, a hung host left alone.

Kill: each run starts an HA VM on h2, pulls h2's plug (every process of the lab
host SIGKILLed, its storage heartbeat service included) and measures, with the
manager's own defaults (monitor poll 5 s, detection 15 s on both channels):
when the manager saw the host silent, when it was lost, when the VM ran on h1,
and when the guest's first heartbeat came.  The baseline, measured in the same
run on the same VM, is the physical limit: a plain libvirt start of the stopped
VM on h1 (no detection, no fencing) and its first heartbeat.

Hang: an HA VM and a plain VM on h2, h2's libvirtd frozen (SIGSTOP) for 30 s:
how soon the host shows "not responding", and what the manager did about it
(the right answer is nothing: no fence, no restart, the same guests running).

Before this design (one channel, grace 5 s) a kill took 6.2 s to running and a
30 s hang fenced the host after about 5 s, killing every VM on it.

    sudo .venv/bin/python bench/failover.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import datetime
from pathlib import Path
from typing import Any

from sqlalchemy import select

from whimbrel.config import Settings
from whimbrel.errors import WhimbrelError
from whimbrel.lab import faults
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import GUEST_DIR, LabSpec, shared_dir
from whimbrel.manager import Manager
from whimbrel.ops import (
    DiskRequest,
    OpClusterCreate,
    OpClusterSet,
    OpHostAdd,
    OpHostFenceSet,
    OpVmCreate,
    OpVmDelete,
)
from whimbrel.store.models import Host, Job, Vm


def until(fn, timeout: float = 120.0, period: float = 0.05):  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(period)
    raise TimeoutError("gave up waiting")


def guest(name: str, pool: str, ha: bool) -> OpVmCreate:
    """A lab guest on h2 that dirties a little memory and writes its disk."""
    return OpVmCreate(
        name,
        "h2",
        192,
        1,
        (DiskRequest(16, pool),),
        ("vm-net",),
        f"{GUEST_DIR}/vmlinuz",
        f"{GUEST_DIR}/initrd.img",
        "console=ttyS0 quiet panic=-1 workload_mib=8 workload_rate=2",
        ha=ha,
    )


def one_run(lab: Lab, mgr: Manager, i: int) -> dict[str, float]:
    r, name = mgr.runner, f"fo{i}"
    assert r.wait(r.submit(guest(name, "csv-alpha", ha=True))).state == "Completed"
    until(lambda: mgr.conns.for_host("h2").heartbeat(name), timeout=90, period=0.5)

    def row() -> tuple[str, str, str]:
        with mgr.sessions() as s:
            vm = s.scalar(select(Vm).where(Vm.name == name))
            h2 = s.scalar(select(Host).where(Host.name == "h2"))
            assert vm is not None and vm.host is not None and h2 is not None
            return vm.host.name, vm.state, h2.state

    t0 = time.monotonic()
    lab.kill_host("h2")
    until(lambda: row()[2] != "connected")
    seen = time.monotonic() - t0
    until(lambda: row()[2] in ("lost", "fenced"))
    lost = time.monotonic() - t0
    until(lambda: row()[:2] == ("h1", "running"))
    running = time.monotonic() - t0
    h1 = mgr.conns.for_host("h1")
    until(lambda: h1.heartbeat(name), timeout=90, period=0.1)
    beating = time.monotonic() - t0
    with mgr.sessions() as s:
        job = s.scalars(select(Job).where(Job.kind == "host.failover").order_by(Job.id.desc()))
        fo = next(iter(job))
        verify_s, fence_s, restart_s = (_took(st.started_at, st.finished_at) for st in fo.steps)
    # The physical limit, same VM, same host: a plain libvirt start and its first heartbeat.
    h1.power_off(name)
    t1 = time.monotonic()
    h1.start(name)
    raw_start = time.monotonic() - t1
    until(lambda: h1.heartbeat(name), timeout=90, period=0.1)
    raw_beat = time.monotonic() - t1
    lab.start_host("h2")
    until(lambda: row()[2] == "connected", timeout=60)
    assert r.wait(r.submit(OpVmDelete(name, force=True))).state == "Completed"
    with mgr.sessions.begin() as s:  # each run's fence is its own: reset the fence window
        for h in s.scalars(select(Host)):
            h.fenced_at = None
    return {
        "seen": seen,
        "lost": lost,
        "running": running,
        "verify": verify_s,
        "beating": beating,
        "fence": fence_s,
        "restart job": restart_s,
        "raw start": raw_start,
        "raw heartbeat": raw_beat,
    }


def _took(start: datetime | None, end: datetime | None) -> float:
    assert start is not None and end is not None
    return (end - start).total_seconds()


def hang(lab: Lab, mgr: Manager, seconds: float = 30.0) -> dict[str, object]:
    """Freeze h2's libvirtd; what did the manager do?"""
    r = mgr.runner
    for name, pool, ha in (("hang-ha", "csv-alpha", True), ("hang-plain", "local", False)):
        assert r.wait(r.submit(guest(name, pool, ha))).state == "Completed"

    def beat(n: str) -> Any:
        # The pool's connection, whichever it is now: the monitor drops a hung one.
        try:
            return mgr.conns.for_host("h2").heartbeat(n)
        except WhimbrelError:
            return None

    writers = {
        n: until(lambda n=n: beat(n), timeout=90, period=0.5).writer
        for n in ("hang-ha", "hang-plain")
    }
    jobs_before = _count_jobs(mgr)
    t0 = time.monotonic()
    faults.freeze_libvirtd(lab, "h2")
    states: dict[str, float] = {}
    try:
        while time.monotonic() - t0 < seconds:
            with mgr.sessions() as s:
                st = s.scalar(select(Host.state).where(Host.name == "h2")) or ""
            states.setdefault(st, time.monotonic() - t0)
            time.sleep(0.1)
    finally:
        faults.freeze_libvirtd(lab, "h2", frozen=False)
    until(lambda: beat("hang-ha") and beat("hang-plain"), timeout=90)
    after = {n: beat(n) for n in writers}
    same = all(hb is not None and hb.writer == writers[n] for n, hb in after.items())
    actions = _count_jobs(mgr) - jobs_before
    for n in writers:
        assert r.wait(r.submit(OpVmDelete(n, force=True))).state == "Completed"
    return {"states": states, "same guests": same, "failover jobs": actions}


def _count_jobs(mgr: Manager) -> int:
    with mgr.sessions() as s:
        return len(
            s.scalars(select(Job.id).where(Job.kind.in_(["host.failover", "vm.recover"]))).all()
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="whimbrel-bench-fo-"))
    settings = Settings(home, f"sqlite:///{home}/w.db", "http://unused")
    lab = Lab(LabSpec(name="f", root=Path("/var/tmp/whimbrel-bench-fo"), octet=81), settings)
    lab.down(say=lambda _m: None)
    lab.up(say=lambda _m: None)
    mgr = Manager(settings)  # the defaults of 'whimbrel serve'
    try:
        mgr.start()
        r = mgr.runner
        r.wait(r.submit(OpClusterCreate("alpha", (shared_dir("alpha"),))))
        hb = str(lab.spec.cluster_dir("alpha") / "shared" / "heartbeat")
        r.wait(r.submit(OpClusterSet("alpha", heartbeat_dir=hb)))
        for h in ("h1", "h2"):
            r.wait(r.submit(OpHostAdd(h, lab.spec.host(h).uri, "alpha")))
            fence = lab.fence_settings(h)
            r.wait(r.submit(OpHostFenceSet(h, "lab", fence["options"])))  # type: ignore[arg-type]
        hung = hang(lab, mgr)
        runs = [one_run(lab, mgr, i) for i in range(args.runs)]
    finally:
        mgr.stop()
        lab.down(say=lambda _m: None)
    med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
    print(
        f"hang of libvirtd 30 s: states {hung['states']} (s after the freeze); "
        f"failover jobs {hung['failover jobs']}; same guests running: {hung['same guests']} "
        "(before: fenced after ~5 s, every VM of the host killed)"
    )
    print(f"{args.runs} kill runs, medians (s), monitor poll 5 s, detection 15 s:")
    for k, v in med.items():
        print(f"  {k:<14} {v:6.2f}   runs: {', '.join(f'{x[k]:.2f}' for x in runs)}")
    print(
        f"kill -> running: {med['running']:.2f} s = {med['running'] / med['raw start']:.1f}x "
        f"a plain start ({med['raw start']:.2f} s); silent after {med['seen']:.2f} s, lost "
        f"after {med['lost']:.2f} s, verify {med['verify']:.2f} s, fence {med['fence']:.2f} s, "
        f"restart job {med['restart job']:.2f} s (before: 6.2 s on one channel)"
    )
    raw = med["raw heartbeat"]
    print(
        f"kill -> first heartbeat: {med['beating']:.2f} s = "
        f"{med['beating'] / raw:.1f}x a plain start's ({raw:.2f} s)"
    )


if __name__ == "__main__":
    main()
