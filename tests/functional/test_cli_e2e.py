"""The way an administrator works: 'whimbrel serve' in the background and the CLI."""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.served import lab_env
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab
PORT = 8479


@pytest.fixture
def env(lab: Lab, tmp_path: Path) -> Iterator[dict[str, str]]:
    # A manager of its own, trusted by the lab's hosts: same CA, own store.
    e = lab_env(lab, tmp_path / "home", PORT, COLUMNS="150")
    yield e
    subprocess.run([*WHIMBREL, "serve", "--stop"], env=e, capture_output=True)


WHIMBREL = [sys.executable, "-m", "whimbrel.cli.main"]


def w(env: dict[str, str], *args: str, ok: bool = True) -> subprocess.CompletedProcess[str]:
    proc = subprocess.run([*WHIMBREL, *args], env=env, capture_output=True, text=True, timeout=300)
    if ok:
        assert proc.returncode == 0, (args, proc.stdout, proc.stderr)
    return proc


def test_admin_session(env: dict[str, str]) -> None:
    w(env, "serve", "--background", "--port", str(PORT))
    token = Path(env["WHIMBREL_HOME"]) / "token"
    assert oct(token.stat().st_mode & 0o777) == "0o600"
    w(env, "lab", "status")
    w(env, "lab", "enroll")
    w(env, "lab", "enroll")  # twice: nothing new, no error
    hosts = json.loads(w(env, "host", "list", "--json").stdout)
    assert [h["name"] for h in hosts] == ["h1", "h2", "h3", "h4"]
    assert "csv-beta" in w(env, "host", "show", "h3").stdout

    w(
        env,
        "vm",
        "create",
        "cli-vm",
        "--host",
        "h3",
        "--memory",
        "192",
        "--disk-mib",
        "16",
        "--pool",
        "csv-beta",
        "--network",
        "vm-net",
        "--lab-guest",
        "--workload-mib",
        "8",
        "--workload-rate",
        "2",
    )
    deadline = time.monotonic() + 90
    beat = None
    while time.monotonic() < deadline and not beat:
        vms = json.loads(w(env, "vm", "list", "--json").stdout)
        beat = vms[0]["heartbeat"]
        time.sleep(1)
    assert beat and beat["counter"] >= 1
    assert "HB " in w(env, "vm", "list").stdout

    refused = w(env, "vm", "delete", "cli-vm", ok=False)
    assert refused.returncode == 5
    assert "error E_VM_RUNNING" in refused.stderr and "Traceback" not in refused.stderr
    unknown = w(env, "host", "show", "h9", ok=False)
    assert unknown.returncode == 3 and "E_HOST_NOT_FOUND" in unknown.stderr

    bad_token = dict(env)
    bad_home = Path(env["WHIMBREL_HOME"]).parent / "other-home"
    bad_home.mkdir()
    (bad_home / "token").write_text("not-the-token\n")
    bad_token["WHIMBREL_HOME"] = str(bad_home)
    denied = w(bad_token, "vm", "list", ok=False)
    assert denied.returncode == 8 and "E_AUTH_TOKEN" in denied.stderr

    w(env, "vm", "delete", "cli-vm", "--force")
    assert json.loads(w(env, "vm", "list", "--json").stdout) == []
    jobs = json.loads(w(env, "job", "list", "--json").stdout)
    assert {j["state"] for j in jobs} == {"Completed"}

    # A restart of the manager loses nothing.
    w(env, "serve", "--stop")
    w(env, "serve", "--background", "--port", str(PORT))
    assert len(json.loads(w(env, "job", "list", "--json", "--limit", "100").stdout)) == len(jobs)
    assert len(json.loads(w(env, "host", "list", "--json").stdout)) == 4
