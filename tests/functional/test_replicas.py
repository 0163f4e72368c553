"""Two manager replicas on one PostgreSQL store, over the real lab.

The leader is SIGKILLed in the middle of a live migration and in the middle of a
host failover: the other replica takes over both jobs when their leases run out,
settles them by what the hosts show, and leads from then on; every VM runs once,
and the dead host was fenced once.  The leader's link to the store is cut: it
stops leading before the other begins (their terms and epochs are compared).
A second manager on a SQLite store is refused.
"""

from __future__ import annotations

import contextlib
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.conftest import fresh_database, wait_for
from tests.functional.served import WHIMBREL, Served, active
from tests.functional.test_lifecycle import lab_vm
from whimbrel.lab.lab import Lab
from whimbrel.manager import TOKEN_CHECK_S

pytestmark = pytest.mark.lab
LEASE_S = 5


class Link:
    """A cuttable TCP link to PostgreSQL's socket.  Cut, it passes nothing either way and
    closes nothing: the replica behind it meets silence.  Its kernel still acknowledges
    what the replica sends, so TCP's own timeouts never fire: a store that is frozen,
    the harder case of a partition, which only the replica's deadlines end."""

    def __init__(self, sock_dir: str) -> None:
        self.target = f"{sock_dir}/.s.PGSQL.5432"
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.open = threading.Event()
        self.open.set()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.server.accept()
            except OSError:
                return
            if not self.open.is_set():  # a new connection meets the same silence
                self.open.wait()
            pg = socket.socket(socket.AF_UNIX)
            pg.connect(self.target)
            for a, b in ((conn, pg), (pg, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                self.open.wait()
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                s.close()

    def cut(self) -> None:
        self.open.clear()

    def mend(self) -> None:
        self.open.set()

    def close(self) -> None:
        self.open.set()
        self.server.close()


@pytest.fixture
def pair(lab: Lab, postgres: str, tmp_path: Path) -> Iterator[tuple[Served, Served, Link]]:
    """Replica a (leader, reaching the store through a cuttable link) and replica b."""
    db = fresh_database(postgres)
    link = Link(postgres)
    name = db.split("@/", 1)[1].split("?")[0]
    via_link = f"postgresql+psycopg://postgres@127.0.0.1:{link.port}/{name}"
    lease = {"WHIMBREL_REPLICA_LEASE_S": str(LEASE_S)}
    a = Served(lab, tmp_path / "a", 8483, WHIMBREL_DB_URL=via_link, **lease)
    b = Served(lab, tmp_path / "b", 8484, WHIMBREL_DB_URL=db, **lease)
    a.start()
    wait_for(lambda: a.get("/replica")["leader"], timeout=30)
    (tmp_path / "b").mkdir(exist_ok=True)
    for shared in ("token", "secret.key"):  # one token and one sealing key for all
        shutil.copy(tmp_path / "a" / shared, tmp_path / "b" / shared)
    b.start()
    a.cli("lab", "enroll")
    yield a, b, link
    link.mend()
    alive = b if b.get("/replica")["holding"] else a
    for vm in alive.get("/vms"):
        r = alive.http.delete(f"/vms/{vm['name']}", params={"force": True})
        if r.status_code == 202:
            alive.done(int(r.json()["id"]))
    for s in (a, b):
        subprocess.run([*WHIMBREL, "serve", "--stop"], env=s.env, capture_output=True)
    link.close()


def _vm(s: Served, name: str, host: str, **kw: Any) -> None:
    job = s.done(s.submit("/vms", lab_vm(name, host, "csv-alpha", **kw)))
    assert job["state"] == "Completed", job["error"]
    wait_for(lambda: (h := s.get(f"/vms/{name}/heartbeat")["heartbeat"]) and h["counter"] > 2, 90)


def _runs_once(lab: Lab, vm: str) -> str:
    where = [h.name for h in lab.spec.hosts if _runs_on(lab, h.name, vm)]
    assert len(where) == 1, f"{vm} runs on {where}"
    return where[0]


def _runs_on(lab: Lab, host: str, vm: str) -> bool:
    import libvirt

    try:
        return active(lab, host, vm)
    except libvirt.libvirtError:  # a killed host: its QEMU processes died with it
        return False


def _leads(s: Served) -> dict[str, Any] | None:
    me = s.get("/replica")
    return me if me["leader"] else None


def test_the_leader_killed_mid_migration_the_other_replica_settles_it(
    lab: Lab, pair: tuple[Served, Served, Link]
) -> None:
    a, b, _ = pair
    epoch = a.get("/replica")["epoch"]
    _vm(a, "r-mig", "h1")
    job_id = a.submit("/vms/r-mig/migrate", {"to": "h2", "bandwidth_mib_s": 2})
    a.phase(job_id, "memory pass")
    assert a.get(f"/jobs/{job_id}")["owner"] == a.get("/replica")["name"]
    a.kill()
    t0 = time.monotonic()
    job = b.done(job_id, timeout=180)
    took = time.monotonic() - t0
    assert job["owner"] == b.get("/replica")["name"] and job["claim"] == 2, job
    assert job["state"] in ("Completed", "Terminated") and job["manual_fix"] == "", job
    where = _runs_once(lab, "r-mig")
    assert b.get("/vms/r-mig")["host"] == where == ("h2" if job["state"] == "Completed" else "h1")
    me = wait_for(lambda: _leads(b), timeout=4 * LEASE_S)
    assert me["epoch"] == epoch + 1
    rows = {r["name"]: r for r in b.get("/managers")}
    assert rows[me["name"]]["state"] == "leader"
    print(
        f"\nleader killed mid memory copy: {job['state']} on {where}, settled by the other "
        f"replica {took:.1f} s after the kill (lease {LEASE_S} s); epoch {epoch} -> {me['epoch']}"
    )


def test_the_leader_killed_mid_failover_the_other_finishes_it_and_fences_once(
    lab: Lab, pair: tuple[Served, Served, Link]
) -> None:
    a, b, _ = pair
    epoch = a.get("/replica")["epoch"]
    _vm(a, "r-ha", "h2")
    assert a.done(a.submit("/vms/r-ha/ha", {"enabled": True, "priority": 3}))["state"] == (
        "Completed"
    )
    try:
        lab.kill_host("h2")
        t0 = time.monotonic()

        def failover_restarting() -> dict[str, Any] | None:
            jobs = [j for j in a.get("/jobs") if j["kind"] == "host.failover"]
            mid = [j for j in jobs if j["subject"] == "h2" and j["phase"].startswith("restart")]
            return mid[0] if mid else None

        job = wait_for(failover_restarting, timeout=120, period=0.1)
        assert job["owner"] == a.get("/replica")["name"]
        a.kill()
        killed = time.monotonic()
        job = b.done(job["id"], timeout=180)
        assert job["state"] == "Completed" and job["claim"] == 2, job
        wait_for(lambda: b.get("/vms/r-ha")["state"] == "running", timeout=60)
        took = time.monotonic() - killed
        assert _runs_once(lab, "r-ha") == "h1" == b.get("/vms/r-ha")["host"]
        fenced = [e for e in b.get("/hosts/h2")["events"] if "fenced" in e["event"]]
        assert len(fenced) == 1, fenced  # once, by the failover the dead leader began
        fence = next(st for st in job["steps"] if st["name"] == "fence")["result"]
        assert fence["epoch"] == epoch
        failovers = [j for j in b.get("/jobs") if j["kind"] == "host.failover"]
        assert len(failovers) == 1, failovers
        print(
            f"\nleader killed mid failover: the other replica finished it {took:.1f} s after "
            f"the kill ({time.monotonic() - t0:.1f} s after the host died); fenced once "
            f"(epoch {epoch})"
        )
    finally:
        lab.start_host("h2")
    wait_for(lambda: b.get("/hosts/h2")["state"] == "connected", timeout=90)


def test_a_leader_cut_from_the_store_stops_leading_before_the_other_starts(
    pair: tuple[Served, Served, Link],
) -> None:
    a, b, link = pair
    with ThreadPoolExecutor(8) as pool:  # idle connections in a's pool, each dead once cut
        list(pool.map(lambda _: a.get("/managers"), range(8)))
    first = a.get("/replica")
    link.cut()
    t0 = time.monotonic()
    second = wait_for(lambda: _leads(b), timeout=6 * LEASE_S, period=0.1)
    took = time.monotonic() - t0
    stuck = ThreadPoolExecutor(48)  # more reads than the API has workers, all on the store
    for _ in range(48):
        stuck.submit(_quietly, a, "/vms")
    time.sleep(1)
    asked = time.monotonic()
    cut_off = a.get("/replica")  # answered from memory: the store is out of reach
    answered = time.monotonic() - asked
    assert answered < TOKEN_CHECK_S + 2, answered  # a token check's deadline at most
    assert not cut_off["leader"] and not cut_off["holding"]
    ended, began = cut_off["terms"][-1], second["terms"][-1]
    assert ended["epoch"] == first["epoch"] and ended["ended"]
    assert began["epoch"] == first["epoch"] + 1
    gap = began["began"] - ended["until"]
    assert gap > 0, (ended, began)
    link.mend()
    wait_for(lambda: a.get("/replica")["holding"], timeout=6 * LEASE_S)
    assert not a.get("/replica")["leader"]  # back as a follower: epochs never go back
    rows = {r["name"]: r["state"] for r in b.get("/managers")}
    assert sorted(rows.values()) == ["alive", "leader"], rows
    stuck.shutdown(wait=True)
    print(
        f"\nstore cut: epoch {ended['epoch']} ended ({ended['ended']}) {gap:.2f} s before "
        f"epoch {began['epoch']} began on the other replica, {took:.1f} s after the cut; "
        f"/replica answered in {answered:.2f} s beside 48 reads stuck on the store"
    )


def _quietly(s: Served, path: str) -> None:
    """A read that waits on the store; how it ends does not matter here."""
    with contextlib.suppress(httpx.HTTPError):
        s.http.get(path)


def test_a_second_manager_on_a_sqlite_store_is_refused(lab: Lab, tmp_path: Path) -> None:
    one = Served(lab, tmp_path / "one", 8485)
    one.start()
    try:
        store = f"sqlite:///{tmp_path / 'one' / 'whimbrel.db'}"
        two = Served(lab, tmp_path / "two", 8486, WHIMBREL_DB_URL=store)
        p = subprocess.run(
            [*WHIMBREL, "serve", "--background", "--port", "8486"],
            env=two.env,
            capture_output=True,
            text=True,
        )
        assert p.returncode != 0
        assert "E_STORE_SINGLE_MANAGER" in p.stdout + p.stderr, (p.stdout, p.stderr)
        assert one.get("/replica")["leader"]  # the first one is untouched
    finally:
        subprocess.run([*WHIMBREL, "serve", "--stop"], env=one.env, capture_output=True)
