"""Cluster reserve and placement at Hyper-V's cluster maximums: 64 nodes, 8,000 VMs.

Baselines measured in the same run:
- brute force: pack the HA VMs of every set of k failed nodes (what the
  bounds in placement/reserve.py avoid), for k = 1 and 2;
- one pass: a single sum over every VM's memory, the least any answer costs;
- the store read: loading the 8,000 VMs with their disks from SQLite, which
  a refresh (VMM's cluster refresher) cannot avoid.

    .venv/bin/python bench/placement.py [--nodes 64] [--vms 8000]
"""

from __future__ import annotations

import argparse
import itertools
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import selectinload

from whimbrel.placement.load import NodeLoad, VmLoad
from whimbrel.placement.rating import Needs, Site, rate
from whimbrel.placement.refresh import refresh
from whimbrel.placement.reserve import _try, overcommit
from whimbrel.store.db import open_store
from whimbrel.store.models import Cluster, Disk, Host, Network, SharedStorage, Vm

GIB = 1024


def timed(fn: Callable[[], object], runs: int = 5) -> float:
    out = []
    for _ in range(runs):
        t0 = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t0)
    return statistics.median(out)


def fleet(nodes: int, vms: int, fill: float, seed: int = 1) -> list[NodeLoad]:
    """``nodes`` of 1 TiB; mixed VM sizes (80% HA) filling about ``fill`` of memory."""
    rng = random.Random(seed)
    out = [NodeLoad(f"n{i:02d}", 1024 * GIB, 64) for i in range(nodes)]
    avg = fill * 1024 * GIB * nodes / vms
    for j in range(vms):
        mem = int(avg * rng.choice([0.25, 0.5, 1.0, 1.0, 1.5, 1.75]))
        node = out[j % nodes]
        mem = max(256, min(mem, node.free_mib - 256))
        node.vms.append(VmLoad(f"vm{j}", mem, 2, ha=rng.random() < 0.8))
    return out


def line(label: str, ours: float, base: float, what: str) -> None:
    print(f"{label:<38} {ours * 1e3:>10.2f} {base * 1e3:>10.2f} {ours / base:>9.4f}  {what}")


def total(nodes: list[NodeLoad]) -> int:
    return sum(v.memory_mib for n in nodes for v in n.vms)


def brute(nodes: list[NodeLoad], k: int) -> bool:
    return any(_try(nodes, {n.name for n in s}) for s in itertools.combinations(nodes, k))


def store_bench(nodes: list[NodeLoad]) -> tuple[float, float]:
    home = Path(tempfile.mkdtemp(prefix="whimbrel-bench-place-"))
    sessions = open_store(f"sqlite:///{home}/w.db")
    with sessions.begin() as s:
        c = Cluster(name="big", reserve=1, shared_storage=[SharedStorage(path="/csv")])
        s.add(c)
        for i, n in enumerate(nodes):
            h = Host(
                name=n.name,
                uri=f"qemu+tls://10.0.{i // 250}.{i % 250}/system",
                cluster=c,
                memory_mib=n.memory_mib,
                cpus=n.cpus,
                machine_types=["pc-i440fx-7.2"],
                networks=[Network(name="vm-net", bridge="br-vm")],
            )
            s.add(h)
            for v in n.vms:
                s.add(
                    Vm(
                        name=v.name,
                        uuid=f"00000000-0000-4000-8000-{int(v.name[2:]):012d}",
                        host=h,
                        state="running",
                        memory_mib=v.memory_mib,
                        vcpus=v.vcpus,
                        virt_type="kvm",
                        machine="pc-i440fx-7.2",
                        networks=["vm-net"],
                        ha=v.ha,
                        disks=[Disk(target="vda", path=f"/csv/{v.name}.qcow2")],
                    )
                )

    def read() -> None:
        with sessions() as s:
            list(s.scalars(select(Vm).options(selectinload(Vm.disks))))

    def refreshed() -> None:
        with sessions.begin() as s:
            refresh(s, "bench", "big")

    return timed(read, 3), timed(refreshed, 3)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, default=64)
    ap.add_argument("--vms", type=int, default=8000)
    args = ap.parse_args()
    print(f"{args.nodes} nodes, {args.vms} VMs (80% HA)")
    print(f"{'case':<38} {'ours ms':>10} {'base ms':>10} {'ratio':>9}  baseline")
    for fill in (0.6, 0.85):
        nodes = fleet(args.nodes, args.vms, fill)
        one_pass = timed(partial(total, nodes))
        for k in (1, 2, 3):
            ours = timed(partial(overcommit, nodes, k))
            verdict = overcommit(nodes, k)
            label = f"reserve {k}, {fill:.0%} full ({'over' if verdict.overcommitted else 'ok'})"
            if k <= 2:
                base = timed(partial(brute, nodes, k), runs=1)
                assert brute(nodes, k) == verdict.overcommitted, "bounds disagree with packing"
                line(label, ours, base, "brute force")
            line(label, ours, one_pass, "one pass")
        sites = [Site(n, "big", frozenset({"vm-net"})) for n in nodes]
        need = Needs(("vm-net",), "big")
        ours = timed(partial(rate, VmLoad("new", 8 * GIB, 2, ha=True), need, sites, {"big": 1}))
        label = f"rate 64 hosts for an HA VM, {fill:.0%}"
        line(label, ours, one_pass, "one pass")
    read, refreshed = store_bench(fleet(args.nodes, args.vms, 0.6))
    label = "refresh from SQLite (verdict+findings)"
    line(label, refreshed, read, "store read")


if __name__ == "__main__":
    main()
