"""Whimbrel's live migration against plain 'virsh migrate --live' with libvirt's defaults.

The same lab guest and workload, on the same two lab hosts, migrated
alternately by Whimbrel (prediction, downtime policy, its host settings) and by
virsh (libvirt defaults: 300 ms downtime, no tuning).  Workloads: idle, 64 MiB
dirtied at a moderate rate, and 64 MiB dirtied flat out on a migration link
shaped to a fixed rate (tc tbf), which the defaults cannot converge on.
A run that has not finished after --give-up seconds is aborted: converged no.

The lab's cluster allows post-copy ('cluster set --postcopy when-needed') unless
--postcopy never is given.  Every run is judged by the guest too (lab notes §2.3:
QEMU's TCG can corrupt a heavily dirtying guest in migration): a heartbeat from
the same writer with no stale page (bad=0), and no kernel error on its console.
The physical limit of the shaped link is the guest's memory at the link's rate.
Downtime is libvirt's figure; beside it, the pause the hosts report (the source's
'suspended' event to the destination's 'resumed', both read by this process),
which holds for post-copy too, where libvirt keeps no completed figures.

    .venv/bin/python bench/migration.py [--runs 10] [--link-mbit 400] [--postcopy never]
        [--workload idle ...] [--performance tcp|compression|parallel]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import tempfile
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import libvirt

from whimbrel.config import Settings
from whimbrel.domain.migration import MIB
from whimbrel.drivers.libvirt.driver import ensure_event_loop
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import GUEST_DIR, LabSpec, shared_dir
from whimbrel.manager import Manager
from whimbrel.ops import (
    DiskRequest,
    OpClusterCreate,
    OpClusterSet,
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
MEMORY_MIB = 256
OOPS = ("BUG:", "general protection fault", "Kernel panic", "Oops", "soft lockup")


class Pauses:
    """Lifecycle events of both hosts, timed by this process's clock."""

    def __init__(self, uris: list[str]):
        ensure_event_loop()
        self.events: list[tuple[float, str, int]] = []
        self.conns = [libvirt.open(u) for u in uris]
        for c in self.conns:
            c.domainEventRegisterAny(None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._seen, None)

    def _seen(self, _c: object, dom: libvirt.virDomain, event: int, _d: int, _o: object) -> None:
        self.events.append((time.perf_counter(), dom.name(), event))

    def pause_ms(self, name: str, since: float) -> float:
        """From the guest's stop on the source to its run on the destination."""
        mine = [(t, e) for t, n, e in list(self.events) if n == name and t >= since]
        stop = next((t for t, e in mine if e == libvirt.VIR_DOMAIN_EVENT_SUSPENDED), None)
        if stop is None:
            return float("nan")
        go = next((t for t, e in mine if e == libvirt.VIR_DOMAIN_EVENT_RESUMED and t > stop), None)
        return float("nan") if go is None else (go - stop) * 1000


@dataclass
class Run:
    total_s: float
    downtime_ms: int
    mib: float
    converged: bool
    steps: dict[str, float] = field(default_factory=dict)  # Whimbrel's: step -> seconds
    healthy: bool = True  # the guest's own word after the move (checked when converged)
    postcopy: bool = False
    pause_ms: float = float("nan")  # suspended on the source to resumed on the destination


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
        print(f"    whimbrel run failed: {job.message}")
        return Run(total, 0, 0.0, False)
    steps = {
        st.name: (st.finished_at - st.started_at).total_seconds()
        for st in job.steps
        if st.started_at and st.finished_at
    }
    post = any("post-copy" in s for s in res.get("strategy", []))
    return Run(total, int(res["downtime_ms"]), float(res["memory_mib"]), True, steps, True, post)


def healthy(lab: Lab, mgr: Manager, host: str, name: str, before: int) -> bool:
    """The guest kept counting after the move, found no stale page, printed no oops."""
    drv = mgr.conns.for_host(host)
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        hb = drv.heartbeat(name)
        if hb is not None and hb.counter > before:
            console = lab.console_log(host, name).read_text(errors="replace")
            return hb.bad == 0 and not any(o in console for o in OOPS)
        time.sleep(0.5)
    return False


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


def pct(values: list[float], q: float) -> float:
    """The q-quantile, nearest rank (10 runs: p95 is the worst but none)."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * len(s) + 0.5) - 1))]


def _p50(values: Iterable[float]) -> float:
    return pct(list(values), 0.5)


def summary(runs: list[Run]) -> tuple[float, float, float, int]:
    ok = [r for r in runs if r.converged]
    med = _p50  # the table's p50, so that a ratio reads off the table
    if not ok:
        return float("nan"), float("nan"), float("nan"), 0
    return (
        med(r.total_s for r in ok),
        med(r.downtime_ms for r in ok),
        med(r.mib for r in ok),
        len(ok),
    )


def line(wname: str, method: str, rs: list[Run]) -> str:
    ok = [r for r in rs if r.converged]
    total = [r.total_s for r in ok]
    down = [float(r.downtime_ms) for r in ok]
    pause = [r.pause_ms for r in ok if r.pause_ms == r.pause_ms]
    return (
        f"{wname:<24} {method:<9} {pct(total, 0.5):>6.2f} {pct(total, 0.95):>6.2f} "
        f"{pct(down, 0.5):>7.0f} {pct(down, 0.95):>7.0f} "
        f"{pct(pause, 0.5):>7.0f} {pct(pause, 0.95):>7.0f} "
        f"{statistics.median(r.mib for r in ok) if ok else float('nan'):>6.0f} "
        f"{len(ok):>4}/{len(rs):<3} {sum(r.healthy for r in ok):>4}/{len(ok):<3} "
        f"{sum(r.postcopy for r in ok):>4}"
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=10)
    ap.add_argument("--postcopy", choices=["when-needed", "never"], default="when-needed")
    ap.add_argument("--link-mbit", type=int, default=400)
    ap.add_argument("--give-up", type=float, default=40.0)
    ap.add_argument("--workload", choices=list(WORKLOADS), action="append", help="(repeat)")
    ap.add_argument(
        "--performance",
        choices=["tcp", "compression", "parallel"],
        help="the hosts' migration performance option (default: Whimbrel's own default)",
    )
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
    r.wait(r.submit(OpClusterSet("alpha", postcopy=args.postcopy)))
    for h in ("h1", "h2"):
        lh = lab.spec.host(h)
        r.wait(r.submit(OpHostAdd(h, lh.uri, "alpha")))
        ms = lh.migration_settings
        op = OpHostMigrationSet(
            h,
            addresses=tuple(ms["addresses"]),  # type: ignore[arg-type]
            networks=tuple(ms["networks"]),
            performance=args.performance,
        )  # type: ignore[arg-type]
        r.wait(r.submit(op))
    pki = settings.client_pki_dir
    perf = args.performance or "default"
    print(f"cluster alpha: post-copy {args.postcopy}; performance {perf}; {args.runs} runs each")
    print(
        f"{'workload':<24} {'method':<9} {'total s':>13} {'downtime ms':>15} "
        f"{'pause ms':>15} {'MiB':>6} {'converged':>9} {'healthy':>8} {'post':>4}"
    )
    print(f"{'':<24} {'':<9} {'p50':>6} {'p95':>6} {'p50':>7} {'p95':>7} {'p50':>7} {'p95':>7}")
    pauses = Pauses([f"{lab.spec.host(h).uri}?pkipath={pki}" for h in ("h1", "h2")])
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
                        MEMORY_MIB,
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
                hb = mgr.conns.for_host(src).heartbeat(vms[method])
                since = time.perf_counter()
                if method == "virsh":
                    res = virsh_move(lab, pki, vms[method], src, dst, args.give_up)
                else:
                    res = whimbrel_move(mgr, vms[method], dst, args.give_up)
                if res.converged:
                    where[method] = dst
                    res.healthy = healthy(lab, mgr, dst, vms[method], hb.counter if hb else 0)
                    res.pause_ms = pauses.pause_ms(vms[method], since)
                results[method].append(res)
                time.sleep(2)
        for method, rs in results.items():
            print(line(wname, method, rs))
        if shaped:
            limit = MEMORY_MIB * MIB / (args.link_mbit * 1e6 / 8)
            tw = pct([r.total_s for r in results["whimbrel"] if r.converged], 0.5)
            print(
                f"{'':<24} physical limit: {MEMORY_MIB} MiB at {args.link_mbit} Mbit/s = "
                f"{limit:.2f} s; whimbrel p50 {tw / limit:.2f}x the limit"
            )
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
