"""The manager at fleet scale: 1,000 hosts / 25,000 VMs and 2,500 hosts / 40,000 VMs.

The scale simulator (bench/simulator.py) serves every host from this process,
each call paying a round trip of about 5 ms.  Each figure is printed against the
same work done by a minimal script over the same store, measured in the same run:

- monitor cycle: every host asked for its domains and the answers applied,
  against the simulator's own floor (every host asked through the same 16
  connections, nothing written): the goal is every host seen within its 5 s;
- VM list, first page and filtered by host, p50/p95 through the API, against
  the same rows read by one SQL query each;
- 1,000 VM creations and 1,000 live migrations through the job engine (jobs per
  second), against the rows written by a script;
- the cluster reserve and findings refresh after one event, against reading
  the cluster's VMs;
- the manager process's memory.

    .venv/bin/python bench/scale.py [--hosts 1000 --vms 25000] [--db-url URL] [--jobs 1000]
"""

from __future__ import annotations

import argparse
import math
import resource
import statistics
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from fastapi.testclient import TestClient
from sqlalchemy import func, insert, select, text, update

from simulator import SimFleet  # beside this script
from whimbrel.api.app import create_app
from whimbrel.config import Settings
from whimbrel.domain.job import JobState
from whimbrel.manager import Manager
from whimbrel.placement.refresh import refresh
from whimbrel.store.models import Cluster, Disk, Host, Job, SharedStorage, StoragePool, Vm

PER_CLUSTER = 16
POOL = 16  # the monitor's connections
CLIENTS = 8  # API callers submitting jobs at once


def build(m: Manager, sim: SimFleet, hosts: int, vms: int) -> None:
    """Clusters of 16 hosts, and ``vms`` running VMs spread over them (as imported)."""
    names = [f"h{i:05d}" for i in range(hosts)]
    with m.sessions.begin() as s:
        n_clusters = math.ceil(hosts / PER_CLUSTER)
        s.execute(insert(Cluster), [{"name": f"c{c:04d}", "reserve": 1} for c in range(n_clusters)])
        ids = dict(s.execute(select(Cluster.name, Cluster.id)).all())
        rows = []
        for i, h in enumerate(names):
            c = f"c{i // PER_CLUSTER:04d}"
            sim.add_host(h, memory_mib=1 << 20, pools={"local": f"/srv/{h}", "csv": f"/srv/{c}"})
            rows.append(
                {
                    "name": h,
                    "uri": f"fake://{h}",
                    "cluster_id": ids[c],
                    "memory_mib": 1 << 20,
                    "free_memory_mib": 1 << 19,
                    "cpus": 64,
                    "virt_type": "kvm",
                }
            )
        s.execute(insert(Host), rows)
        hid = dict(s.execute(select(Host.name, Host.id)).all())
        s.execute(
            insert(StoragePool),
            [
                {
                    "host_id": hid[h],
                    "name": p,
                    "path": path,
                    "capacity_bytes": 1 << 42,
                    "available_bytes": 1 << 41,
                }
                for h in names
                for p, path in sim.hosts[h].pools.items()
            ],
        )
        shared = [{"cluster_id": cid, "path": f"/srv/{c}"} for c, cid in ids.items()]
        s.execute(insert(SharedStorage), shared)
        vm_rows = []
        for j in range(vms):
            h = names[j % hosts]
            name = f"vm{j:06d}"
            sim.add_running(h, name)
            vm_rows.append(
                {
                    "name": name,
                    "uuid": sim.hosts[h].domains[name].spec.uuid,
                    "host_id": hid[h],
                    "state": "running",
                    "memory_mib": 1024,
                    "vcpus": 1,
                    "virt_type": "kvm",
                    "machine": "pc-q35-7.2",
                }
            )
        s.execute(insert(Vm), vm_rows)
        vid = dict(s.execute(select(Vm.name, Vm.id)).all())
        s.execute(
            insert(Disk),
            [
                {"vm_id": vid[v["name"]], "target": "vda", "path": f"/srv/x/{v['name']}.qcow2"}
                for v in vm_rows
            ],
        )


def pct(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(p * len(xs)))]


def line(what: str, ours: float, base: float, unit: str = "s") -> None:
    print(f"  {what:<44} {ours:9.4f} {unit}  baseline {base:9.4f} {unit}  {ours / base:7.3f}x")


def bench_monitor(m: Manager, sim: SimFleet, hosts: int) -> None:
    m.monitor.poll_once()  # warm: connections opened
    t0 = time.perf_counter()
    m.monitor.poll_once()
    cycle = time.perf_counter() - t0
    uris = [f"fake://{h}" for h in sim.hosts]
    t0 = time.perf_counter()
    with ThreadPoolExecutor(POOL) as pool:
        list(pool.map(lambda u: m.conns.for_uri(u).list_domains(), uris))
    floor = time.perf_counter() - t0
    line(f"monitor cycle, {hosts} hosts", cycle, floor)
    print(f"    every host seen within the 5 s period: {'yes' if cycle < 5 else 'NO'}")


def bench_lists(m: Manager, api: TestClient) -> None:
    def timed(fn: Any, n: int = 30) -> list[float]:
        out = []
        for _ in range(n):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
        return out

    page = timed(lambda: api.get("/api/v1/vms", params={"limit": 500}).raise_for_status())

    def raw_page() -> None:
        with m.sessions() as s:
            s.execute(
                text(
                    "SELECT v.*, h.name, c.name FROM vms v LEFT JOIN hosts h ON v.host_id = h.id "
                    "LEFT JOIN clusters c ON h.cluster_id = c.id ORDER BY v.name LIMIT 500"
                )
            ).all()
            s.execute(text("SELECT * FROM disks ORDER BY vm_id LIMIT 500")).all()

    raw = timed(raw_page)
    line("vm list, first page of 500, p50", statistics.median(page), statistics.median(raw))
    line("vm list, first page of 500, p95", pct(page, 0.95), pct(raw, 0.95))
    filt = timed(lambda: api.get("/api/v1/vms", params={"host": "h00007"}).raise_for_status())

    def raw_filtered() -> None:
        with m.sessions() as s:
            s.execute(
                text(
                    "SELECT v.* FROM vms v JOIN hosts h ON v.host_id = h.id "
                    "WHERE h.name = 'h00007' ORDER BY v.name"
                )
            ).all()

    rawf = timed(raw_filtered)
    line("vm list ?host=, p50", statistics.median(filt), statistics.median(rawf))
    line("vm list ?host=, p95", pct(filt, 0.95), pct(rawf, 0.95))


def bench_jobs(m: Manager, sim: SimFleet, api: TestClient, n: int) -> None:
    hosts = list(sim.hosts)

    def run(reqs: list[tuple[str, dict[str, Any]]]) -> float:
        """Submitted by CLIENTS callers at once, as a fleet's tools would; then awaited."""

        def post(req: tuple[str, dict[str, Any]]) -> int:
            r = api.post("/api/v1" + req[0], json=req[1])
            assert r.status_code == 202, r.text
            return int(r.json()["id"])

        t0 = time.perf_counter()
        with ThreadPoolExecutor(CLIENTS) as pool:
            ids = list(pool.map(post, reqs))
        submitted = time.perf_counter() - t0
        for j in ids:
            job = m.runner.wait(j, timeout=1800)
            assert job.state == JobState.COMPLETED, (job.kind, job.message)
        took = time.perf_counter() - t0
        with m.sessions() as s:
            rows = s.execute(
                select(Job.created_at, Job.started_at, Job.finished_at).where(Job.id.in_(ids))
            ).all()
        queued = statistics.mean((r[1] - r[0]).total_seconds() for r in rows)
        running = statistics.mean((r[2] - r[1]).total_seconds() for r in rows)
        print(
            f"    submitted in {submitted:.1f} s; a job queued {queued:.1f} s and ran"
            f" {running:.2f} s on average"
        )
        return took

    creates = [
        (
            "/vms",
            {
                "name": f"new{i:05d}",
                "host": hosts[i % len(hosts)],
                "memory_mib": 256,
                "disks": [{"size_mib": 16, "pool": "csv"}],
                "start": True,
            },
        )
        for i in range(n)
    ]
    took = run(creates)
    t0 = time.perf_counter()
    for i in range(n):  # the minimal script: the same rows, a transaction each
        with m.sessions.begin() as s:
            vm_id = s.execute(
                insert(Vm)
                .values(
                    name=f"raw{i:05d}",
                    uuid=f"raw-{i}",
                    memory_mib=256,
                    vcpus=1,
                    virt_type="kvm",
                    machine="pc",
                    host_id=s.scalar(select(Host.id).where(Host.name == hosts[i % len(hosts)])),
                    state="running",
                )
                .returning(Vm.id)
            ).scalar_one()
            s.execute(insert(Disk).values(vm_id=vm_id, target="vda", path=f"/srv/raw{i}.qcow2"))
    raw = time.perf_counter() - t0
    line(f"create {n} VMs (jobs/s; script rows/s)", n / took, n / raw, "/s")

    def peer(i: int) -> str:
        """Another host of the cluster of host i (the last cluster may be smaller)."""
        h = i % len(hosts)
        base = h // PER_CLUSTER * PER_CLUSTER
        size = min(PER_CLUSTER, len(hosts) - base)
        return hosts[base + (h - base + 1) % size]

    moves = [(f"/vms/new{i:05d}/migrate", {"to": peer(i)}) for i in range(n)]
    took = run(moves)
    t0 = time.perf_counter()
    for i in range(n):
        with m.sessions.begin() as s:
            to = s.scalar(select(Host.id).where(Host.name == moves[i][1]["to"]))
            s.execute(update(Vm).where(Vm.name == f"raw{i:05d}").values(host_id=to))
    raw = time.perf_counter() - t0
    line(f"live-migrate {n} VMs (jobs/s; script rows/s)", n / took, n / raw, "/s")


def bench_refresh(m: Manager) -> None:
    def one() -> float:
        t0 = time.perf_counter()
        with m.sessions.begin() as s:
            refresh(s, "node h00001 failed", "c0000")
        return time.perf_counter() - t0

    ours = statistics.median(one() for _ in range(10))

    def raw() -> float:
        t0 = time.perf_counter()
        with m.sessions() as s:
            s.execute(
                text(
                    "SELECT v.* FROM vms v JOIN hosts h ON v.host_id = h.id "
                    "JOIN clusters c ON h.cluster_id = c.id WHERE c.name = 'c0000'"
                )
            ).all()
        return time.perf_counter() - t0

    line(
        "reserve + findings refresh, one cluster", ours, statistics.median(raw() for _ in range(10))
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--vms", type=int, default=25000)
    ap.add_argument("--jobs", type=int, default=1000)
    ap.add_argument("--db-url", default="")
    ap.add_argument("--latency-ms", type=float, default=5.0)
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="whimbrel-scale-"))
    url = a.db_url or f"sqlite:///{home / 'whimbrel.db'}"
    sim = SimFleet(a.latency_ms)
    m = Manager(Settings(home, url, "http://bench"), opener=sim.open)
    print(f"{a.hosts} hosts, {a.vms} VMs, store {url.split(':')[0]}, latency {a.latency_ms} ms")
    t0 = time.perf_counter()
    build(m, sim, a.hosts, a.vms)
    with m.sessions() as s:
        assert s.scalar(select(func.count()).select_from(Vm)) == a.vms
    print(f"  store filled in {time.perf_counter() - t0:.1f} s")
    m.start()
    m.monitor.stop_loop()  # the benchmark drives the cycles itself
    api = TestClient(
        create_app(m, start_runner=False), headers={"Authorization": f"Bearer {m.token}"}
    )
    try:
        bench_monitor(m, sim, a.hosts)
        bench_lists(m, api)
        bench_refresh(m)
        if a.jobs:
            bench_jobs(m, sim, api, a.jobs)
        with m.sessions() as s:
            jobs = s.scalar(select(func.count()).select_from(Job))
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"  manager process memory (max RSS, simulator included): {rss:.0f} MiB; {jobs} jobs")
    finally:
        m.stop()


if __name__ == "__main__":
    main()
