"""Whimbrel's live migration against plain 'virsh migrate --live' with libvirt's defaults.

The same lab guest and workload, on the same two lab hosts, migrated
alternately by Whimbrel (prediction, downtime policy, its host settings) and by
virsh (libvirt defaults: 300 ms downtime, no tuning).  Workloads: idle, 64 MiB
dirtied at a moderate rate, and 64 MiB dirtied flat out on a migration link
shaped to a fixed rate (tc tbf), which the defaults cannot converge on.
A run that has not finished after --give-up seconds is aborted: converged no.

    sudo .venv/bin/python bench/migration.py [--runs 3] [--link-mbit 400]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from whimbrel.config import Settings
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import GUEST_DIR, LabSpec, shared_dir
from whimbrel.manager import Manager
from whimbrel.ops import (
    DiskRequest,
    OpClusterCreate,
    OpHostAdd,
    OpHostMigrationSet,
    OpVmCreate,
    OpVmDelete,
    OpVmMigrate,
)

WORKLOADS = {  # name: (MiB dirtied, MiB/s (0 = flat out), shaped link)
    "idle": (1, 1, False),
    "64MiB@16MiB/s": (64, 16, False),
    "64MiB@max, shaped link": (64, 0, True),
}


@dataclass
class Run:
    total_s: float
    downtime_ms: int
    mib: float
    converged: bool
    steps: dict[str, float] = field(default_factory=dict)  # Whimbrel's: step -> seconds


def _completed(conn: libvirt.virConnect, name: str) -> dict[str, Any]:
    return dict(conn.lookupByName(name).jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED))


def virsh_move(lab: Lab, pki: Path, name: str, src: str, dst: str, give_up: float) -> Run:
    s, d = lab.spec.host(src), lab.spec.host(dst)
    suri = f"{s.uri}?pkipath={pki}"
    duri = f"{d.uri}?pkipath={pki}"
    cmd = ["virsh", "-c", suri, "migrate", "--live", "--persistent", "--undefinesource"]
    # --unsafe only because libvirt does not recognise the lab's shared directory as shared.
    cmd += ["--unsafe", name, duri, "--migrateuri", f"tcp://{d.migration_ip}"]
    aborted = threading.Event()

    def watchdog() -> None:
        if not done.wait(give_up):
            aborted.set()
            subprocess.run(["virsh", "-c", suri, "domjobabort", name], capture_output=True)

    done = threading.Event()
    threading.Thread(target=watchdog, daemon=True).start()
    t0 = time.perf_counter()
    proc = subprocess.run(cmd, capture_output=True, text=True)
    total = time.perf_counter() - t0
    done.set()
    if proc.returncode != 0 or aborted.is_set():
        return Run(total, 0, 0.0, False)
    conn = libvirt.open(duri)
    try:
        st = _completed(conn, name)
    finally:
        conn.close()
    return Run(total, int(st.get("downtime", 0)), st.get("memory_processed", 0) / 2**20, True)


def whimbrel_move(mgr: Manager, name: str, dst: str, give_up: float) -> Run:
    r = mgr.runner
    t0 = time.perf_counter()
    # The whole budget as the completion timeout: past it, Whimbrel aborts too.
    job = r.wait(r.submit(OpVmMigrate(name, dst, timeout_s_per_gib=give_up * 4)), timeout=600)
    total = time.perf_counter() - t0
    res = (job.progress or {}).get("result")
    if job.state != "Completed" or not res:
        return Run(total, 0, 0.0, False)
    steps = {
        st.name: (st.finished_at - st.started_at).total_seconds()
        for st in job.steps
        if st.started_at and st.finished_at
    }
    return Run(total, int(res["downtime_ms"]), float(res["memory_mib"]), True, steps)


def shape(lab: Lab, mbit: int | None) -> None:
    for h in ("h1", "h2"):
        ns = lab.spec.host(h).netns
        subprocess.run(
            ["ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", "eth1", "root"],
            capture_output=True,
        )
        if mbit:
            subprocess.run(
                [
                    "ip",
                    "netns",
                    "exec",
                    ns,
                    "tc",
                    "qdisc",
                    "add",
                    "dev",
                    "eth1",
                    "root",
                    "tbf",
                    "rate",
                    f"{mbit}mbit",
                    "burst",
                    "256k",
                    "latency",
                    "50ms",
                ],
                check=True,
            )


def summary(runs: list[Run]) -> tuple[float, float, float, int]:
    ok = [r for r in runs if r.converged]
    med = statistics.median
    if not ok:
        return float("nan"), float("nan"), float("nan"), 0
    return (
        med(r.total_s for r in ok),
        med(r.downtime_ms for r in ok),
        med(r.mib for r in ok),
        len(ok),
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--link-mbit", type=int, default=400)
    ap.add_argument("--give-up", type=float, default=40.0)
    ap.add_argument("--workload", choices=list(WORKLOADS), action="append", help="(repeat)")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="whimbrel-bench-mig-"))
    settings = Settings(home, f"sqlite:///{home}/w.db", "http://unused")
    lab = Lab(LabSpec(name="m", root=Path("/var/tmp/whimbrel-bench-mig"), octet=80), settings)
    lab.down(say=lambda _m: None)
    lab.up(say=lambda _m: None)
    mgr = Manager(settings)
    try:
        mgr.runner.start()  # no inventory monitor: virsh moves the VM behind its back
        run(lab, mgr, settings, args)
    finally:
        mgr.stop()
        lab.down(say=lambda _m: None)


def run(lab: Lab, mgr: Manager, settings: Settings, args: argparse.Namespace) -> None:
    r = mgr.runner
    r.wait(r.submit(OpClusterCreate("alpha", (shared_dir("alpha"),))))
    for h in ("h1", "h2"):
        lh = lab.spec.host(h)
        r.wait(r.submit(OpHostAdd(h, lh.uri, "alpha")))
        ms = lh.migration_settings
        op = OpHostMigrationSet(
            h,
            addresses=tuple(ms["addresses"]),  # type: ignore[arg-type]
            networks=tuple(ms["networks"]),
        )  # type: ignore[arg-type]
        r.wait(r.submit(op))
    pki = settings.client_pki_dir
    print(
        f"{'workload':<24} {'method':<9} {'total s':>8} {'downtime ms':>12} {'MiB':>7} "
        f"{'converged':>10}"
    )
    for wname, (mib, rate, shaped) in WORKLOADS.items():
        if args.workload and wname not in args.workload:
            continue
        shape(lab, args.link_mbit if shaped else None)
        cmd = f"console=ttyS0 quiet panic=-1 workload_mib={mib} workload_rate={rate}"
        vms = {"virsh": "bv", "whimbrel": "bw"}
        for vm in vms.values():
            job = r.wait(
                r.submit(
                    OpVmCreate(
                        vm,
                        "h1",
                        256,
                        1,
                        (DiskRequest(16, "csv-alpha"),),
                        ("vm-net",),
                        f"{GUEST_DIR}/vmlinuz",
                        f"{GUEST_DIR}/initrd.img",
                        cmd,
                    )
                )
            )
            assert job.state == "Completed", job.message
        time.sleep(8)  # boot (TCG) and let the workload reach its rate
        where = {"virsh": "h1", "whimbrel": "h1"}
        results: dict[str, list[Run]] = {"virsh": [], "whimbrel": []}
        for _ in range(args.runs):
            for method in ("virsh", "whimbrel"):
                src = where[method]
                dst = "h2" if src == "h1" else "h1"
                if method == "virsh":
                    res = virsh_move(lab, pki, vms[method], src, dst, args.give_up)
                else:
                    res = whimbrel_move(mgr, vms[method], dst, args.give_up)
                if res.converged:
                    where[method] = dst
                results[method].append(res)
                time.sleep(2)
        for method, rs in results.items():
            t, d, m, n = summary(rs)
            print(f"{wname:<24} {method:<9} {t:>8.2f} {d:>12.0f} {m:>7.0f} {n:>6}/{len(rs):<3}")
        ok = [r.steps for r in results["whimbrel"] if r.converged]
        if ok:
            print(
                f"{'':<24} whimbrel steps (median s): "
                + ", ".join(f"{k} {statistics.median(o[k] for o in ok):.2f}" for k in ok[0])
            )
        tv, dv, _mv, nv = summary(results["virsh"])
        tw, dw, _mw, nw = summary(results["whimbrel"])
        if nv and nw:
            print(
                f"{'':<24} ratio whimbrel/virsh: total {tw / tv:.2f}x, "
                f"downtime {dw / max(dv, 1):.2f}x"
            )
        else:
            print(f"{'':<24} converged: whimbrel {nw}/{args.runs}, virsh defaults {nv}/{args.runs}")
        shape(lab, None)
        for method, vm in vms.items():
            if where[method] != "h1":  # bring virsh's VM back into Whimbrel's record
                subprocess.run(
                    [
                        "virsh",
                        "-c",
                        f"{lab.spec.host(where[method]).uri}?pkipath={pki}",
                        "destroy",
                        vm,
                    ],
                    capture_output=True,
                )
                subprocess.run(
                    [
                        "virsh",
                        "-c",
                        f"{lab.spec.host(where[method]).uri}?pkipath={pki}",
                        "undefine",
                        vm,
                    ],
                    capture_output=True,
                )
            r.wait(r.submit(OpVmDelete(vm, force=True)))


if __name__ == "__main__":
    main()
