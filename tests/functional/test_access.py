"""Users and roles on a real manager over the lab, through the CLI: what an operator, a
reader and a cluster-scoped operator may do, revoked tokens, and the audit trail."""

from __future__ import annotations

import contextlib
import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.functional.served import lab_env
from tests.functional.test_migration import on_host
from whimbrel.lab.lab import Lab

pytestmark = pytest.mark.lab
PORT = 8476
WHIMBREL = [sys.executable, "-m", "whimbrel.cli.main"]
PASSWORD = "operators pass phrase"
BMC_PASSWORD = "Pw-only-the-BMC-knows-42"
METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_test"><parameters>
  <parameter name="ip"/><parameter name="username"/><parameter name="password"/>
</parameters></resource-agent>
"""


@pytest.fixture
def admin(lab: Lab, tmp_path: Path) -> Iterator[dict[str, str]]:
    sbin = tmp_path / "sbin"  # a fence agent that documents a password (never called here)
    sbin.mkdir()
    agent = sbin / "fence_test"
    agent.write_text(f"#!/bin/sh\n[ \"$1\" = -o ] && cat <<'EOF'\n{METADATA}EOF\n")
    agent.chmod(0o755)
    e = lab_env(lab, tmp_path / "home", PORT, WHIMBREL_FENCE_AGENT_DIR=str(sbin), COLUMNS="200")
    yield e
    subprocess.run([*WHIMBREL, "serve", "--stop"], env=e, capture_output=True)


def w(
    env: dict[str, str], *args: str, rc: int = 0, stdin: str = ""
) -> subprocess.CompletedProcess[str]:
    p = subprocess.run(
        [*WHIMBREL, *args], env=env, input=stdin, capture_output=True, text=True, timeout=300
    )
    assert p.returncode == rc, (args, p.returncode, p.stdout, p.stderr)
    return p


def as_user(admin: dict[str, str], name: str, role: str, cluster: str = "") -> dict[str, str]:
    """Add ``name`` with that role; they log in with their password into a token file."""
    w(admin, "user", "add", name, "--password-file", "-", stdin=PASSWORD + "\n")
    w(admin, "role", "grant", name, role, *(["--cluster", cluster] if cluster else []))
    env = dict(admin, WHIMBREL_TOKEN_FILE=str(Path(admin["WHIMBREL_HOME"]) / f"{name}.token"))
    w(env, "login", "--user", name, "--password-file", "-", stdin=PASSWORD + "\n")
    return env


def beat(env: dict[str, str], above: int) -> int:
    """The guest's heartbeat counter once it has passed ``above``."""
    deadline = time.monotonic() + 90
    while time.monotonic() < deadline:
        vm = json.loads(w(env, "vm", "list", "--json").stdout)[0]
        if vm["heartbeat"] and vm["heartbeat"]["counter"] > above:
            return int(vm["heartbeat"]["counter"])
        time.sleep(1)
    raise AssertionError(f"no heartbeat above {above}")


def forbidden(env: dict[str, str], *args: str) -> None:
    p = w(env, *args, rc=10)
    assert "E_FORBIDDEN" in p.stderr and "Traceback" not in p.stderr


def test_roles_tokens_and_the_audit_trail_on_the_lab(admin: dict[str, str], lab: Lab) -> None:
    home = Path(admin["WHIMBREL_HOME"])
    started = w(admin, "serve", "--background", "--port", str(PORT))
    shown = [ln for ln in started.stderr.splitlines() if "first administrator" in ln]
    assert len(shown) == 1, started.stderr
    password = shown[0].split("password ")[1].split(" ")[0]
    assert password not in (home / "serve.log").read_text()
    assert not list(home.glob(".first-password.*"))
    w(admin, "lab", "enroll")
    w(admin, "vm", "create", "acl-vm", "--host", "h1", "--memory", "192", "--disk-mib", "16",
      "--pool", "csv-alpha", "--network", "vm-net", "--lab-guest")  # fmt: skip

    olga = as_user(admin, "olga", "operator")
    forbidden(olga, "host", "add", "h9", "--uri", "qemu+tls://10.0.0.9/system")
    forbidden(olga, "host", "fence", "set", "h1", "--agent", "lab")
    forbidden(olga, "vm", "delete", "acl-vm", "--force")
    forbidden(olga, "cluster", "set", "alpha", "--reserve", "0")
    w(olga, "vm", "migrate", "acl-vm", "--to", "h2")
    vm = json.loads(w(admin, "vm", "show", "acl-vm", "--json").stdout)
    assert vm["host"] == "h2" and vm["state"] == "running"
    assert [h.name for h in lab.spec.hosts if on_host(lab, h.name, "acl-vm")] == ["h2"]
    assert beat(admin, above=beat(admin, above=0))  # the guest counts on, on h2
    jobs = json.loads(w(admin, "job", "list", "--json").stdout)
    assert [j["user"] for j in jobs if j["kind"] == "vm.migrate"] == ["olga"]

    rita = as_user(admin, "rita", "read-only")
    assert "acl-vm" in w(rita, "vm", "list").stdout
    forbidden(rita, "vm", "stop", "acl-vm")
    short = dict(rita, WHIMBREL_TOKEN_FILE=str(home / "rita-short.token"))
    w(rita, "token", "create", "--expires", "2s", "--output", short["WHIMBREL_TOKEN_FILE"])
    assert "acl-vm" in w(short, "vm", "list").stdout
    time.sleep(2.5)
    assert "E_AUTH_TOKEN_EXPIRED" in w(short, "vm", "list", rc=8).stderr
    carl = as_user(admin, "carl", "operator", cluster="beta")
    forbidden(carl, "vm", "migrate", "acl-vm", "--to", "h1")
    forbidden(carl, "host", "maintenance", "start", "h1")

    token = json.loads(w(olga, "user", "whoami", "--json").stdout)["token"]
    w(admin, "token", "revoke", token)
    revoked = w(olga, "vm", "list", rc=8)
    assert "E_AUTH_TOKEN_REVOKED" in revoked.stderr
    bad = w(admin, "login", "--user", "olga", "--password-file", "-", stdin="wrong\n", rc=8)
    assert "E_LOGIN_FAILED" in bad.stderr

    trail = json.loads(w(admin, "audit", "list", "--json", "--limit", "200").stdout)
    seen = {(e["user"], e["action"], e["status"], e["code"]) for e in trail}
    for entry in [
        ("olga", "host.add", 403, "E_FORBIDDEN"),
        ("olga", "host.fence-set", 403, "E_FORBIDDEN"),
        ("olga", "vm.delete", 403, "E_FORBIDDEN"),
        ("olga", "vm.migrate", 202, ""),
        ("rita", "vm.stop", 403, "E_FORBIDDEN"),
        ("carl", "vm.migrate", 403, "E_FORBIDDEN"),
        ("admin", "token.revoke", 200, ""),
        ("", "", 401, "E_AUTH_TOKEN_REVOKED"),
        ("", "", 401, "E_AUTH_TOKEN_EXPIRED"),
        ("olga", "login", 401, "E_LOGIN_FAILED"),
    ]:
        assert entry in seen, (entry, sorted(seen))
    moved = next(e for e in trail if e["action"] == "vm.migrate" and e["status"] == 202)
    assert moved["job"] == jobs[0]["id"] and moved["source"] == "127.0.0.1"
    assert PASSWORD not in json.dumps(trail) and password not in json.dumps(trail)
    text = w(admin, "audit", "list", "--user", "olga", "--failed").stdout
    assert "E_FORBIDDEN" in text and "host.add" in text and "vm.migrate" not in text
    w(admin, "vm", "delete", "acl-vm", "--force")


def test_a_fence_password_is_nowhere_but_sealed(admin: dict[str, str]) -> None:
    home = Path(admin["WHIMBREL_HOME"])
    w(admin, "serve", "--background", "--port", str(PORT))
    w(admin, "lab", "enroll")
    w(admin, "host", "fence", "set", "h4", "--agent", "fence_test", "--option", "ip=10.0.0.9",
      "--secret-file", "password=-", stdin=BMC_PASSWORD + "\n")  # fmt: skip
    argv = w(admin, "host", "fence", "set", "h4", "--agent", "fence_test",
             "--option", f"password={BMC_PASSWORD}", rc=2)  # fmt: skip
    assert "E_SECRET_ON_COMMAND_LINE" in argv.stderr
    shown = json.loads(w(admin, "host", "fence", "show", "h4", "--json").stdout)
    assert shown["options"] == {"ip": "10.0.0.9", "password": "***"}
    seen = [shown, w(admin, "host", "show", "h4", "--json").stdout]
    for job in json.loads(w(admin, "job", "list", "--json", "--limit", "500").stdout):
        seen.append(w(admin, "job", "show", str(job["id"]), "--json").stdout)
    seen.append(w(admin, "audit", "list", "--json", "--limit", "500").stdout)
    assert BMC_PASSWORD not in json.dumps(seen)
    for f in home.rglob("*"):  # the store (and its WAL), the log, the key, the token
        if f.is_file():
            assert BMC_PASSWORD.encode() not in f.read_bytes(), f
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        with contextlib.suppress(OSError):  # a process that ended meanwhile
            assert BMC_PASSWORD.encode() not in cmdline.read_bytes(), cmdline


def test_the_api_off_loopback_only_over_tls(admin: dict[str, str], lab: Lab) -> None:
    import httpx

    addr = lab.spec.gateway(0)  # the lab's management bridge, on this machine
    refused = w(admin, "serve", "--host", addr, "--port", str(PORT), rc=2)
    assert "E_API_TLS_REQUIRED" in refused.stderr
    env = dict(admin, WHIMBREL_URL=f"https://{addr}:{PORT}")
    w(env, "serve", "--background", "--host", addr, "--port", str(PORT), "--tls")
    assert json.loads(w(env, "host", "list", "--json").stdout) == []  # CA-checked HTTPS
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"http://{addr}:{PORT}/api/v1/health", timeout=5)
    with pytest.raises(httpx.ConnectError):  # a client that does not trust Whimbrel's CA
        httpx.get(f"https://{addr}:{PORT}/api/v1/health", timeout=5)
    w(env, "serve", "--stop")
