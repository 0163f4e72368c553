"""Fixtures shared by every suite: settings on a temporary store, the fake fleet,
an in-process manager, and the API client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from whimbrel.api.app import create_app
from whimbrel.config import Settings
from whimbrel.drivers.fake import FakeFleet
from whimbrel.manager import Manager

FINAL = {"Completed", "Terminated", "Killed", "Exception"}


def wait_for(fn: Any, timeout: float = 30.0, period: float = 0.2) -> Any:
    """Call ``fn`` until it returns something true; return that, or fail after ``timeout``."""
    import time

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = fn()
        if got:
            return got
        time.sleep(period)
    raise AssertionError(f"timed out after {timeout} s")


def assert_golden(path: Path, got: str) -> None:
    """``got`` must equal the golden file; WHIMBREL_REGENERATE=1 rewrites every golden
    file instead.  A missing golden file is a failure, never silently written."""
    import os

    if os.environ.get("WHIMBREL_REGENERATE"):
        path.write_text(got)
    assert path.exists(), f"no golden file {path}: run with WHIMBREL_REGENERATE=1 and review it"
    assert got == path.read_text()


def make_settings(root: Path) -> Settings:
    return Settings(
        home=root / "home", db_url=f"sqlite:///{root}/whimbrel.db", api_url="http://testserver"
    )


@pytest.fixture(params=["sqlite", "postgresql"])
def settings(request: pytest.FixtureRequest, tmp_path: Path) -> Settings:
    """Every test on settings runs on SQLite and on a fresh PostgreSQL database."""
    s = make_settings(tmp_path)
    if request.param == "postgresql":
        server: str = request.getfixturevalue("postgres")
        return Settings(s.home, fresh_database(server), s.api_url)
    return s


def fresh_database(server: str) -> str:
    import uuid

    import psycopg

    name = f"t_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(f"dbname=postgres user=postgres host={server}", autocommit=True) as c:
        c.execute(f"CREATE DATABASE {name}")
    return f"postgresql+psycopg://postgres@/{name}?host={server}"


class PgServer:
    """A throwaway PostgreSQL server on a unix socket, which a test may stop and start."""

    def __init__(self) -> None:
        import glob
        import os
        import shutil
        import tempfile

        initdb = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"))
        if not initdb or os.geteuid() != 0 or shutil.which("runuser") is None:
            if os.environ.get("WHIMBREL_REQUIRE_LAB"):
                pytest.fail("PostgreSQL tests must run here: install postgresql-15 (make deps)")
            pytest.skip("no PostgreSQL server binaries")
        self.bindir = Path(initdb[-1]).parent
        # Not under pytest's tmp tree: that is root's alone, and the server runs as postgres.
        self.root = Path(tempfile.mkdtemp(prefix="whimbrel-pg-"))
        self.data, self.sock = self.root / "data", self.root / "sock"
        self.sock.mkdir()
        shutil.chown(self.root, "postgres")
        shutil.chown(self.sock, "postgres")
        self._pg("initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres")
        self.start()

    def _pg(self, tool: str, *args: str) -> None:
        import subprocess

        cmd = ["runuser", "-u", "postgres", "--", str(self.bindir / tool), *args]
        proc = subprocess.run(cmd, capture_output=True, text=True)
        assert proc.returncode == 0, (cmd, proc.stdout, proc.stderr)

    def start(self) -> None:
        opts = f"-k {self.sock} -c listen_addresses='' -c fsync=off -c max_connections=300"
        log = str(self.root / "log")
        self._pg("pg_ctl", "-D", str(self.data), "-o", opts, "-w", "-l", log, "start")

    def stop(self) -> None:
        self._pg("pg_ctl", "-D", str(self.data), "-m", "immediate", "stop")

    def remove(self) -> None:
        import re
        import shutil

        self.stop()
        log = (self.root / "log").read_text(errors="replace").splitlines()
        SERVER_LOG.extend(line for line in log if re.search(NOTABLE, line))
        shutil.rmtree(self.root)


# What a test's PostgreSQL server said that a failure may hang on: a crash, a client it
# cut off.  Printed at the end of the run, since the server's files go with it.
NOTABLE = r"PANIC|terminated by signal|terminating connection|server process|out of memory"
SERVER_LOG: list[str] = []


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if SERVER_LOG:
        terminalreporter.section("PostgreSQL servers' notable log lines")
        for line in SERVER_LOG[-200:]:
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def postgres() -> Iterator[str]:
    """A throwaway PostgreSQL server on a unix socket; yields the socket directory."""
    server = PgServer()
    yield str(server.sock)
    server.remove()


@pytest.fixture
def fleet() -> FakeFleet:
    fleet = FakeFleet.reset_default()
    for name in ("f1", "f2", "f3"):
        fleet.add_host(name, memory_mib=4096, pools={"local": f"/srv/{name}", "csv": "/srv/csv"})
    return fleet


@pytest.fixture
def manager(settings: Settings, fleet: FakeFleet) -> Iterator[Manager]:
    m = Manager(settings, opener=fleet.open)
    m.start()
    yield m
    m.stop()


class Api:
    """The REST API in process, with helpers that submit and wait for jobs."""

    def __init__(self, manager: Manager):
        self.manager = manager
        self.http = TestClient(
            create_app(manager, start_runner=False),
            headers={"Authorization": f"Bearer {manager.token}"},
        )

    def call(self, method: str, path: str, **kw: Any) -> Any:
        return self.http.request(method, "/api/v1" + path, **kw)

    def job(self, method: str, path: str, json: Any = None, **kw: Any) -> dict[str, Any]:
        """Submit and wait; return the finished job (with steps)."""
        resp = self.call(method, path, json=json, **kw)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        self.manager.runner.wait(job_id, timeout=180)
        return dict(self.call("GET", f"/jobs/{job_id}").json())

    def ok(self, method: str, path: str, json: Any = None, **kw: Any) -> dict[str, Any]:
        job = self.job(method, path, json, **kw)
        assert job["state"] == "Completed", (job["error"], job)
        return job

    def error(self, method: str, path: str, json: Any = None, **kw: Any) -> tuple[int, str]:
        resp = self.call(method, path, json=json, **kw)
        assert resp.status_code >= 400, resp.text
        return resp.status_code, resp.json()["error"]["code"]


@pytest.fixture
def api(manager: Manager) -> Api:
    return Api(manager)


@pytest.fixture
def hosts(api: Api) -> Api:
    """The fake fleet's f1..f3 in cluster c1 (shared /srv/csv), each on two networks."""
    api.ok("POST", "/clusters", {"name": "c1", "shared_paths": ["/srv/csv"]})
    for i, h in enumerate(("f1", "f2", "f3"), start=1):
        api.ok("POST", "/hosts", {"name": h, "uri": f"fake://{h}", "cluster": "c1"})
        body = {"addresses": [f"10.9.0.{i}/24", f"10.9.1.{i}/24"], "networks": ["10.9.1.0/24"]}
        api.ok("POST", f"/hosts/{h}/migration", body)
    return api


# -- the real lab -------------------------------------------------------------

LAB_ROOT = Path("/var/tmp/whimbrel-test-lab")


def _lab_missing() -> str:
    import os
    import shutil

    from whimbrel.lab.lab import REQUIRED_TOOLS

    if os.geteuid() != 0:
        return "the lab needs root"
    missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
    return f"missing: {', '.join(missing)} (run 'make deps')" if missing else ""


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A lab of its own for the tests (name 't', 10.78.0.0/16), torn down at the end."""
    import os

    from whimbrel.lab.lab import Lab
    from whimbrel.lab.topology import LabSpec

    why = _lab_missing()
    if why:
        if os.environ.get("WHIMBREL_REQUIRE_LAB"):
            pytest.fail(f"the lab tests must run here but cannot: {why}")
        pytest.skip(why)
    root = tmp_path_factory.mktemp("labmgr")
    lab = Lab(LabSpec(name="t", root=LAB_ROOT, octet=78), make_settings(root))
    lab.down(say=lambda _m: None)  # leftovers of an interrupted run
    lab.up(say=lambda _m: None)
    yield lab
    lab.down(say=lambda _m: None)


@pytest.fixture(scope="session")
def lab_manager(lab: Any) -> Iterator[Manager]:
    """One manager over the test lab, with its clusters and hosts registered."""
    m = Manager(lab.settings, monitor_period_s=2.0)
    m.start()
    api = Api(m)
    from whimbrel.lab.topology import shared_dir

    for cluster in lab.spec.clusters:
        api.ok("POST", "/clusters", {"name": cluster, "shared_paths": [shared_dir(cluster)]})
        hb = str(lab.spec.cluster_dir(cluster) / "shared" / "heartbeat")
        api.ok("POST", f"/clusters/{cluster}/settings", {"heartbeat_dir": hb})
    for h in lab.spec.hosts:
        api.ok("POST", "/hosts", {"name": h.name, "uri": h.uri, "cluster": h.cluster})
        api.ok("POST", f"/hosts/{h.name}/migration", h.migration_settings)
        api.ok("POST", f"/hosts/{h.name}/fence", lab.fence_settings(h.name))
    yield m
    m.stop()


@pytest.fixture
def lab_api(lab_manager: Manager) -> Iterator[Api]:
    api = Api(lab_manager)
    yield api
    for vm in api.call("GET", "/vms").json():  # each test leaves the lab as it found it
        api.job("DELETE", f"/vms/{vm['name']}", params={"force": True})
    from whimbrel.store.models import Host

    with lab_manager.sessions.begin() as s:  # fences of this test count for no later one
        for row in s.query(Host):
            row.fenced_at = None
