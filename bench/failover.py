"""Time from a host's kill to its HA VM running again elsewhere, against the physical limit.

Each run starts an HA VM on h2, pulls h2's plug (every process of the lab
host SIGKILLed) and measures, with the manager's own defaults (monitor poll
5 s, grace 5 s): when the manager saw the host lost, when the failover job
ran, when the VM ran on h1, and when the guest's first heartbeat came.  The
baseline, measured in the same run on the same VM, is the physical limit:
a plain libvirt start of the stopped VM on h1 (no detection, no fencing)
and its first heartbeat.

    sudo .venv/bin/python bench/failover.py [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

from sqlalchemy import select

from whimbrel.config import Settings
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import GUEST_DIR, LabSpec, shared_dir
from whimbrel.manager import Manager
from whimbrel.ops import (
    DiskRequest,
    OpClusterCreate,
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


def one_run(lab: Lab, mgr: Manager, i: int) -> dict[str, float]:
    r, name = mgr.runner, f"fo{i}"
    op = OpVmCreate(
        name,
        "h2",
        192,
        1,
        (DiskRequest(16, "csv-alpha"),),
        ("vm-net",),
        f"{GUEST_DIR}/vmlinuz",
        f"{GUEST_DIR}/initrd.img",
        "console=ttyS0 quiet panic=-1 workload_mib=8 workload_rate=2",
        ha=True,
    )
    assert r.wait(r.submit(op)).state == "Completed"
    until(lambda: mgr.conns.for_host("h2").heartbeat(name), timeout=90, period=0.5)

    def row() -> tuple[str, str, str]:
        with mgr.sessions() as s:
            vm = s.scalar(select(Vm).where(Vm.name == name))
            h2 = s.scalar(select(Host).where(Host.name == "h2"))
            assert vm is not None and vm.host is not None and h2 is not None
            return vm.host.name, vm.state, h2.state

    t0 = time.monotonic()
    lab.kill_host("h2")
    until(lambda: row()[2] == "unreachable")
    seen = time.monotonic() - t0
    until(lambda: row()[:2] == ("h1", "running"))
    running = time.monotonic() - t0
    h1 = mgr.conns.for_host("h1")
    until(lambda: h1.heartbeat(name), timeout=90, period=0.1)
    beating = time.monotonic() - t0
    with mgr.sessions() as s:
        job = s.scalars(select(Job).where(Job.kind == "host.failover").order_by(Job.id.desc()))
        fo = next(iter(job))
        fence_s = (fo.steps[0].finished_at - fo.steps[0].started_at).total_seconds()
        restart_s = (fo.steps[1].finished_at - fo.steps[1].started_at).total_seconds()
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
    return {
        "seen": seen,
        "running": running,
        "beating": beating,
        "fence": fence_s,
        "restart job": restart_s,
        "raw start": raw_start,
        "raw heartbeat": raw_beat,
    }


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
        for h in ("h1", "h2"):
            r.wait(r.submit(OpHostAdd(h, lab.spec.host(h).uri, "alpha")))
            fence = lab.fence_settings(h)
            r.wait(r.submit(OpHostFenceSet(h, "lab", fence["options"])))  # type: ignore[arg-type]
        runs = [one_run(lab, mgr, i) for i in range(args.runs)]
    finally:
        mgr.stop()
        lab.down(say=lambda _m: None)
    med = {k: statistics.median(x[k] for x in runs) for k in runs[0]}
    print(f"{args.runs} runs, medians (s), monitor poll 5 s, grace 5 s:")
    for k, v in med.items():
        print(f"  {k:<14} {v:6.2f}   runs: {', '.join(f'{x[k]:.2f}' for x in runs)}")
    print(
        f"kill -> running: {med['running']:.2f} s = {med['running'] / med['raw start']:.1f}x "
        f"a plain start ({med['raw start']:.2f} s); of which detection {med['seen']:.2f} s, "
        f"fence {med['fence']:.2f} s, restart job {med['restart job']:.2f} s"
    )
    raw = med["raw heartbeat"]
    print(
        f"kill -> first heartbeat: {med['beating']:.2f} s = "
        f"{med['beating'] / raw:.1f}x a plain start's ({raw:.2f} s)"
    )


if __name__ == "__main__":
    main()
