"""``whimbrel serve`` in a process of its own over the test lab, to be killed."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx

from tests.conftest import wait_for
from whimbrel.lab.lab import Lab

WHIMBREL = [sys.executable, "-m", "whimbrel.cli.main"]


def lab_env(lab: Lab, home: Path, port: int, **extra: str) -> dict[str, str]:
    """The environment of a manager of its own over the test lab, and of its CLI: its home
    (with the lab's CA and the manager's certificate: the hosts trust it), its port."""
    shutil.copytree(lab.settings.pki_dir, home / "pki")
    env = dict(os.environ)
    env.update(
        WHIMBREL_HOME=str(home),
        WHIMBREL_URL=f"http://127.0.0.1:{port}",
        WHIMBREL_LAB_NAME=lab.spec.name,
        WHIMBREL_LAB_DIR=str(lab.spec.root),
        WHIMBREL_LAB_OCTET=str(lab.spec.octet),
        **extra,
    )
    return env


class Served:
    """``whimbrel serve`` in the background over the test lab, with a home of its own
    (its store too, unless ``env`` names one: replicas share a PostgreSQL store)."""

    def __init__(self, lab: Lab, home: Path, port: int, **env: str) -> None:
        self.home, self.port = home, port
        self.env = lab_env(lab, home, port, **env)

    def cli(self, *args: str) -> str:
        p = subprocess.run([*WHIMBREL, *args], env=self.env, capture_output=True, text=True)
        assert p.returncode == 0, (args, p.stdout, p.stderr)
        return p.stdout

    def start(self) -> float:
        t0 = time.monotonic()
        self.cli("serve", "--background", "--port", str(self.port))
        token = (self.home / "token").read_text().strip()
        self.http = httpx.Client(
            base_url=f"http://127.0.0.1:{self.port}/api/v1",
            headers={"Authorization": f"Bearer {token}"},
            timeout=60,
        )
        return time.monotonic() - t0

    @property
    def pid(self) -> int:
        return int((self.home / "serve.pid").read_text())

    def kill(self) -> None:
        """SIGKILL: no goodbye, no cleanup."""
        pid = self.pid
        os.kill(pid, signal.SIGKILL)
        wait_for(lambda: not Path(f"/proc/{pid}").exists() or zombie(pid), timeout=10)

    def get(self, path: str) -> Any:
        r = self.http.get(path)
        assert r.status_code == 200, r.text
        return r.json()

    def submit(self, path: str, body: dict[str, Any] | None = None) -> int:
        r = self.http.post(path, json=body or {})
        assert r.status_code == 202, r.text
        return int(r.json()["id"])

    def done(self, job_id: int, timeout: float = 300) -> dict[str, Any]:
        final = {"Completed", "Terminated", "Killed", "Exception"}
        return dict(
            wait_for(
                lambda: (j := self.get(f"/jobs/{job_id}"))["state"] in final and j,
                timeout=timeout,
                period=0.5,
            )
        )

    def phase(self, job_id: int, *prefixes: str) -> None:
        wait_for(
            lambda: self.get(f"/jobs/{job_id}")["phase"].startswith(prefixes),
            timeout=90,
            period=0.05,
        )


def zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] == "Z"
    except OSError:
        return True


def active(lab: Lab, host: str, name: str) -> bool:
    import libvirt

    conn = libvirt.open(lab.spec.host(host).local_uri)
    try:
        return name in [
            d.name() for d in conn.listAllDomains(libvirt.VIR_CONNECT_LIST_DOMAINS_ACTIVE)
        ]
    finally:
        conn.close()
