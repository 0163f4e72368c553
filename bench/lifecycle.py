"""What Whimbrel's jobs cost on top of raw libvirt, measured on real lab hosts.

For each operation the same work is done, alternately, by plain libvirt-python
calls (the baseline: the hypervisor alone) and by a Whimbrel job through the
manager (validation, persisted steps, inventory).  Prints medians and the
ratio Whimbrel / raw.  Also times 'lab up' cold and warm.

    sudo .venv/bin/python bench/lifecycle.py [--runs 5]
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import libvirt

from whimbrel.config import Settings
from whimbrel.domain.vm import BootSpec, DiskSpec, DomainSpec, Heartbeat
from whimbrel.drivers.libvirt.driver import LibvirtHost
from whimbrel.drivers.libvirt.xml import domain_xml
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import GUEST_DIR, LabSpec, shared_dir
from whimbrel.manager import Manager
from whimbrel.ops import (
    DiskRequest,
    OpClusterCreate,
    OpHostAdd,
    OpVmCreate,
    OpVmDelete,
    OpVmRestore,
    OpVmSave,
)

CMDLINE = "console=ttyS0 quiet panic=-1 workload_mib=8 workload_rate=2"
BOOT = BootSpec(f"{GUEST_DIR}/vmlinuz", f"{GUEST_DIR}/initrd.img", CMDLINE)


def timed(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def first_heartbeat(host: LibvirtHost, name: str, timeout: float = 120) -> Heartbeat:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        hb = host.heartbeat(name, timeout_s=0.5)
        if hb is not None:
            return hb
    raise TimeoutError(name)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="whimbrel-bench-"))
    settings = Settings(home, f"sqlite:///{home}/w.db", "http://unused")
    lab = Lab(LabSpec(name="b", root=Path("/var/tmp/whimbrel-bench-lab"), octet=79), settings)
    quiet = lambda _m: None  # noqa: E731
    lab.down(say=quiet)
    lab_cold = timed(lambda: lab.up(say=quiet))
    lab_warm = timed(lambda: lab.up(say=quiet))
    try:
        run(lab, settings, args.runs, lab_cold, lab_warm)
    finally:
        lab.down(say=quiet)


def run(lab: Lab, settings: Settings, runs: int, lab_cold: float, lab_warm: float) -> None:
    mgr = Manager(settings)
    mgr.start()
    r = mgr.runner
    host = lab.spec.host("h1")
    r.wait(r.submit(OpClusterCreate("alpha", (shared_dir("alpha"),))))
    r.wait(r.submit(OpHostAdd("h1", host.uri, "alpha")))
    drv = LibvirtHost.open(host.uri, settings.client_pki_dir)
    raw_conn = drv.conn
    pool = raw_conn.storagePoolLookupByName("csv-alpha")
    res: dict[str, dict[str, list[float]]] = {}

    def note(op: str, who: str, secs: float) -> None:
        res.setdefault(op, {"raw": [], "whimbrel": []})[who].append(secs)

    def job(op: object) -> None:
        job = r.wait(r.submit(op))  # type: ignore[arg-type]
        assert job.state == "Completed", job.error

    for i in range(runs):
        # -- raw libvirt: volume, define, start; save; restore; destroy, undefine, delete
        name = f"raw{i}"
        t0 = time.perf_counter()
        vol = pool.createXML(
            f"<volume><name>{name}.qcow2</name><capacity>16777216</capacity>"
            "<target><format type='qcow2'/></target></volume>",
            0,
        )
        spec = DomainSpec(
            name,
            str(uuid.uuid4()),
            192,
            1,
            "qemu",
            "pc-i440fx-7.2",
            BOOT,
            (DiskSpec(vol.path()),),
            ("vm-net",),
            f"/var/log/libvirt/qemu/{name}-console.log",
        )
        dom = raw_conn.defineXML(domain_xml(spec))
        dom.create()
        note("create+start", "raw", time.perf_counter() - t0)
        first_heartbeat(drv, name)
        note("create → first heartbeat", "raw", time.perf_counter() - t0)
        note("save", "raw", timed(lambda d=dom: d.managedSave(0)))  # type: ignore[misc]
        note("restore", "raw", timed(lambda d=dom: d.create()))  # type: ignore[misc]
        t0 = time.perf_counter()
        dom.destroy()
        dom.undefineFlags(libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE)
        vol.delete(0)
        note("delete (running)", "raw", time.perf_counter() - t0)

        # -- the same through Whimbrel jobs
        name = f"wb{i}"
        t0 = time.perf_counter()
        job(
            OpVmCreate(
                name,
                "h1",
                192,
                1,
                (DiskRequest(16, "csv-alpha"),),
                ("vm-net",),
                BOOT.kernel,
                BOOT.initrd,
                CMDLINE,
            )
        )
        note("create+start", "whimbrel", time.perf_counter() - t0)
        first_heartbeat(drv, name)
        note("create → first heartbeat", "whimbrel", time.perf_counter() - t0)
        note("save", "whimbrel", timed(lambda n=name: job(OpVmSave(n))))  # type: ignore[misc]
        note("restore", "whimbrel", timed(lambda n=name: job(OpVmRestore(n))))  # type: ignore[misc]
        note("delete (running)", "whimbrel", timed(lambda n=name: job(OpVmDelete(n, force=True))))  # type: ignore[misc]

    mgr.stop()
    drv.close()
    print(f"lab up: cold {lab_cold:.2f} s (4 hosts, TLS, pools, QEMU probe), warm {lab_warm:.2f} s")
    print(f"{'operation':<26}{'raw libvirt':>13}{'whimbrel':>11}{'ratio':>8}   (medians of {runs})")
    for op, by in res.items():
        raw, wb = statistics.median(by["raw"]), statistics.median(by["whimbrel"])
        print(f"{op:<26}{raw:>11.3f} s{wb:>9.3f} s{wb / raw:>7.2f}x")


if __name__ == "__main__":
    main()
