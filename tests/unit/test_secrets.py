"""A fence password is sealed at rest and travels only to its agent's stdin: never in
an API answer, a job's op or result, the audit trail, a log line or the store in clear."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest
from sqlalchemy import select, text

from tests.conftest import Api
from tests.unit.test_api_failover import _ha_fleet
from whimbrel.access.vault import Vault
from whimbrel.config import Settings
from whimbrel.domain.vm import VmState
from whimbrel.drivers.fake import FakeFleet
from whimbrel.errors import WhimbrelError
from whimbrel.manager import Manager
from whimbrel.store.accounts import SealedSecret
from whimbrel.store.models import Host, Job

PASSWORD = "Pw-only-the-BMC-knows-42"


def _everything(api: Api) -> str:
    """Every answer, job, step result and trail entry the API has, and the store's rows."""
    parts = [api.call("GET", p).text for p in ("/hosts", "/vms", "/jobs", "/audit?limit=500")]
    for j in api.call("GET", "/jobs", params={"limit": 500}).json():
        parts.append(api.call("GET", f"/jobs/{j['id']}").text)
    parts.append(api.call("GET", "/hosts/f1/fence").text)
    parts.append(api.call("GET", "/hosts/f1").text)
    engine = api.manager.sessions.kw["bind"]
    with engine.connect() as c:
        for table in ("hosts", "jobs", "job_steps", "audit", "sealed_secrets"):
            parts.append(str(c.execute(text(f"SELECT * FROM {table}")).all()))
    return "\n".join(parts)


def test_a_fence_password_is_sealed_and_reaches_only_the_agent(
    hosts: Api, fleet: FakeFleet, agents: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    f = _ha_fleet(hosts, fleet, None)
    opts = {"ip": "10.0.0.9", "username": "admin", "password": PASSWORD}
    set_job = hosts.ok("POST", "/hosts/f1/fence", {"agent": "fence_test", "options": opts})
    assert set_job["op"]["options"]["password"].startswith("secret:")
    assert hosts.call("GET", "/hosts/f1/fence").json()["options"]["password"] == "***"
    # Again with the reference the job kept (an undo does this): it stays sealed.
    again = {"agent": "fence_test", "options": set_job["op"]["options"]}
    hosts.ok("POST", "/hosts/f1/fence", again)
    bad = {"agent": "fence_test", "options": {"ip": set_job["op"]["options"]["password"]}}
    assert hosts.error("POST", "/hosts/f1/fence", bad) == (400, "E_SECRET_REFERENCE_REFUSED")

    fleet.hosts["f1"].up = False
    for d in fleet.hosts["f1"].domains.values():
        d.state = VmState.STOPPED
    f.step(1)
    job = hosts.ok("POST", "/hosts/f1/fence/confirm")
    assert job["steps"][1]["result"]["agent"] == "fence_test"
    calls = (agents.parent / "calls.log").read_text()
    assert f"password={PASSWORD}\naction=off\n" in calls  # opened for the agent alone

    assert PASSWORD not in _everything(hosts)
    assert PASSWORD not in caplog.text
    key = hosts.manager.settings.secret_key_file
    assert oct(key.stat().st_mode & 0o777) == "0o600"


def test_an_agent_that_echoes_the_password_has_it_masked(hosts: Api, agents: Path) -> None:
    (agents / "fence_test").write_text(
        (agents / "fence_test")
        .read_text()
        .replace("echo 'Status: OFF'", 'echo "ipmitool -P $(grep password=)" >&2; exit 1')
    )
    opts = {"ip": "10.0.0.9", "password": PASSWORD}
    hosts.ok("POST", "/hosts/f1/fence", {"agent": "fence_test", "options": opts})
    from whimbrel.ha.fence import fence

    with pytest.raises(WhimbrelError) as info:
        fence("f1", {"agent": "fence_test", "options": opts})
    assert "ipmitool -P" in str(info.value.detail) and PASSWORD not in str(info.value.to_dict())


def test_passwords_stored_in_clear_by_an_older_manager_are_sealed_at_start(
    settings: Settings, fleet: FakeFleet
) -> None:
    m = Manager(settings, opener=fleet.open)
    with m.sessions.begin() as s:
        s.add(Host(name="old", uri="fake://f1", fence={"agent": "fence_test",
                                                    "options": {"passwd": PASSWORD}}))  # fmt: skip
        s.add(Job(kind="host.fence-set", op={"options": {"passwd": PASSWORD}}))
    again = Manager(settings, opener=fleet.open)
    with again.sessions() as s:
        h = s.scalar(select(Host).where(Host.name == "old"))
        assert h is not None and h.fence["options"]["passwd"].startswith("secret:")
        assert again.vault.open(s, h.fence["options"]["passwd"]) == PASSWORD
        assert PASSWORD not in json.dumps([j.op for j in s.scalars(select(Job))])
        assert all(PASSWORD not in r.sealed for r in s.scalars(select(SealedSecret)))


def test_another_key_cannot_open_and_says_so(settings: Settings, fleet: FakeFleet) -> None:
    m = Manager(settings, opener=fleet.open)
    with m.sessions.begin() as s:
        ref = m.vault.seal(s, "host f1 fence password", PASSWORD)
    other = Vault(settings.home / "other.key")
    with m.sessions() as s, pytest.raises(WhimbrelError) as info:
        other.open(s, ref)
    assert info.value.code == "E_SECRET_KEY_MISMATCH" and "same key file" in info.value.fix
    settings.secret_key_file.chmod(0o644)
    with pytest.raises(WhimbrelError) as refused:
        Vault(settings.secret_key_file)
    assert refused.value.code == "E_SECRET_KEY_FILE_REFUSED"


def test_the_cli_takes_a_secret_from_a_file_or_stdin_never_an_argument(
    hosts: Api, agents: Path, tmp_path: Path
) -> None:
    from typer.testing import CliRunner

    from whimbrel.cli import context
    from whimbrel.cli.client import Client
    from whimbrel.cli.main import app

    context.use_client(Client(hosts.manager.settings, http=hosts.http))
    try:
        runner = CliRunner()
        argv = ["host", "fence", "set", "f1", "--agent", "fence_test"]
        r = runner.invoke(app, [*argv, "--option", f"password={PASSWORD}"])
        assert isinstance(r.exception, WhimbrelError)
        assert r.exception.code == "E_SECRET_ON_COMMAND_LINE"
        loose = tmp_path / "pw"
        loose.write_text(PASSWORD)
        loose.chmod(0o644)
        r = runner.invoke(app, [*argv, "--secret-file", f"password={loose}"])
        assert isinstance(r.exception, WhimbrelError)
        assert r.exception.code == "E_SECRET_FILE_REFUSED"
        r = runner.invoke(app, [*argv, "--secret-file", "password=-"], input=PASSWORD + "\n")
        assert r.exit_code == 0, r.output
    finally:
        context.use_client(None)
    assert hosts.call("GET", "/hosts/f1/fence").json()["options"] == {"password": "***"}
