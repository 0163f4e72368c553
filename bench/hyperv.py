"""What Whimbrel adds to a Hyper-V move: WinRM round trips and wall time, against the
hand-written minimum, on the transport double with a round-trip time and a move time.

A real Hyper-V host is not available here, so the hosts are the transport double
(tests/hyperv_double/); what is measured is Whimbrel's own share: the scripts
it runs around the move (preflight on both hosts, Compare-VM, job polls, cluster
roles, the record) and the time they cost at a given WinRM round-trip time.  The
baseline, run in the same process on a fresh estate with the same settings, is
the least an administrator's script does for the same move through the same
driver: the move's cmdlets and the polls of its job, no checks.

    .venv/bin/python bench/hyperv.py [--rtt-ms 50] [--move-s 2] [--runs 3]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the double is in tests/

from tests.hyperv_double.estate import HyperVEstate

from whimbrel.config import Settings
from whimbrel.drivers.hyperv.driver import HyperVHost
from whimbrel.drivers.hyperv.model import HvJob
from whimbrel.manager import Manager
from whimbrel.ops import (
    DiskRequest,
    OpClusterCreate,
    OpHostAdd,
    OpHostMaintenanceStart,
    OpVmCreate,
    OpVmHa,
    OpVmMigrate,
)

CSV = {"alpha": "C:/ClusterStorage/Volume1", "beta": "C:/ClusterStorage/Volume2"}
NODES = {"alpha": ("HV01", "HV02"), "beta": ("HV03", "HV04")}


def estate(rtt_s: float, move_s: float, poll_s: float) -> HyperVEstate:
    e = HyperVEstate.two_clusters()
    e.latency_s, e.job_s, e.poll_s = rtt_s, move_s, poll_s
    return e


def manager(e: HyperVEstate, vms: int) -> Manager:
    home = Path(tempfile.mkdtemp(prefix="whimbrel-bench-hv-"))
    m = Manager(Settings(home, f"sqlite:///{home}/w.db", "http://unused"), opener=e.open,
                monitor_period_s=3600)  # fmt: skip
    m.start()
    r = m.runner
    latency, e.latency_s = e.latency_s, 0.0  # setting up is not measured
    for c, nodes in NODES.items():
        r.wait(r.submit(OpClusterCreate(c, (CSV[c],))))
        for n in nodes:
            r.wait(r.submit(OpHostAdd(n.lower(), e.uri(n), c)))
    for i in range(vms):
        op = OpVmCreate(f"vm{i}", "hv01", 4096, 2, (DiskRequest(40960, "Volume1"),), ("Prod",))
        r.wait(r.submit(op))
        r.wait(r.submit(OpVmHa(f"vm{i}", True, 3)))
    e.latency_s = latency
    return m


def timed(e: HyperVEstate, fn: Callable[[], None]) -> tuple[float, int]:
    e.calls.clear()
    t0 = time.monotonic()
    fn()
    return time.monotonic() - t0, len(e.calls)


def whimbrel(kind: str, rtt_s: float, move_s: float, poll_s: float) -> tuple[float, int]:
    e = estate(rtt_s, move_s, poll_s)
    m = manager(e, 3 if kind == "drain" else 1)
    r = m.runner
    ops = {
        "cross-cluster": OpVmMigrate("vm0", "", to_cluster="beta"),
        "in-cluster": OpVmMigrate("vm0", "hv02"),
        "drain": OpHostMaintenanceStart("hv01"),
    }
    try:

        def run() -> None:
            job = r.wait(r.submit(ops[kind]), timeout=600)
            assert job.state == "Completed", job.error

        return timed(e, run)
    finally:
        m.stop()


def baseline(kind: str, rtt_s: float, move_s: float, poll_s: float) -> tuple[float, int]:
    """The same move by hand through the same driver: its cmdlets and its polls only."""
    e = estate(rtt_s, move_s, poll_s)
    m = manager(e, 3 if kind == "drain" else 1)
    m.stop()  # only its estate is used: VMs defined, roles added
    d = {n: e.open(e.uri(n)) for n in ("HV01", "HV02", "HV03")}

    def wait(drv: HyperVHost, path: str) -> None:
        while not HvJob.parse(drv.call("job_state", JobPath=path)).done:
            time.sleep(poll_s)

    def owned(drv: HyperVHost, vm: str, node: str) -> None:
        while drv.call("cluster_group", Name=vm)["OwnerNode"].lower() != node:
            time.sleep(poll_s)

    def run() -> None:
        if kind == "cross-cluster":
            d["HV01"].call("cluster_role_remove", VMName="vm0")
            vhd = e.hosts["HV01"].vms["vm0"].disks[0]
            out = d["HV01"].call(
                "vm_migrate_wmi", Name="vm0", DestinationHost="hv03.corp.example",
                MigrationType=32771, DataRoot="C:\\ClusterStorage\\Volume2",
                Vhds={vhd: vhd.replace("Volume1", "Volume2")},
            )  # fmt: skip
            wait(d["HV01"], out["Job"])
            d["HV03"].call("cluster_role_add", VMName="vm0", Priority=3000)
        else:
            for vm in [v for v in e.hosts["HV01"].vms]:
                d["HV01"].call("cluster_move_role", Name=vm, Node="hv02", MigrationType="Live")
                owned(d["HV01"], vm, "hv02")
            if kind == "drain":
                d["HV01"].call("node_suspend", Name="HV01", Drain=True)

    return timed(e, run)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rtt-ms", type=float, default=50.0)
    ap.add_argument("--move-s", type=float, default=2.0)
    ap.add_argument("--poll-s", type=float, default=0.5)
    ap.add_argument("--runs", type=int, default=3)
    a = ap.parse_args()
    rtt = a.rtt_ms / 1000
    print(f"WinRM round trip {a.rtt_ms:.0f} ms, each move's job {a.move_s:.1f} s, "
          f"polls every {a.poll_s:.1f} s; medians of {a.runs} runs")  # fmt: skip
    print(f"{'operation':<16}{'whimbrel':>16}{'by hand':>16}{'ratio':>8}{'overhead':>10}")
    for kind in ("cross-cluster", "in-cluster", "drain"):
        w = [whimbrel(kind, rtt, a.move_s, a.poll_s) for _ in range(a.runs)]
        b = [baseline(kind, rtt, a.move_s, a.poll_s) for _ in range(a.runs)]
        wt, wc = statistics.median(x[0] for x in w), statistics.median(x[1] for x in w)
        bt, bc = statistics.median(x[0] for x in b), statistics.median(x[1] for x in b)
        print(f"{kind:<16}{wt:9.2f} s {wc:4.0f}rt{bt:9.2f} s {bc:4.0f}rt"
              f"{wt / bt:7.2f}x{wt - bt:8.2f} s")  # fmt: skip


if __name__ == "__main__":
    main()
