"""The CLI against the API in process: tables, JSON, and errors without tracebacks."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import Api, assert_golden
from whimbrel.cli import context
from whimbrel.cli.client import Client
from whimbrel.cli.main import app, report
from whimbrel.config import Settings
from whimbrel.errors import WhimbrelError

GOLDEN = Path(__file__).parent.parent / "golden"


@pytest.fixture
def cli(api: Api, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[CliRunner]:
    monkeypatch.setenv("WHIMBREL_HOME", str(settings.home))
    context.settings.cache_clear()
    c = Client(settings, http=api.http)
    context.use_client(c)
    yield CliRunner(env={"COLUMNS": "110", "NO_COLOR": "1", "TERM": "dumb"})
    context.use_client(None)
    context.settings.cache_clear()


def run(cli: CliRunner, *args: str) -> tuple[int, str, str]:
    # Errors go through main()'s handler, as in the real entry point.
    result = cli.invoke(app, list(args), catch_exceptions=True)
    if isinstance(result.exception, WhimbrelError):
        import io

        buf = io.StringIO()
        context.err.file = buf
        try:
            code = report(result.exception)
        finally:
            context.err.file = None  # type: ignore[assignment]
        return code, result.stdout, buf.getvalue()
    return result.exit_code, result.stdout, result.stderr


def test_commands_and_tables(cli: CliRunner) -> None:
    assert run(cli, "cluster", "create", "c1", "--shared-path", "/srv/csv")[0] == 0
    code, out, _ = run(cli, "host", "add", "f1", "--uri", "fake://f1", "--cluster", "c1")
    assert code == 0 and "host.add f1: Completed" in out
    code, out, _ = run(cli, "host", "list")
    golden = GOLDEN / "cli-host-list.txt"
    assert_golden(golden, out)
    code, out, _ = run(
        cli, "vm", "create", "v1", "--host", "f1", "--disk-mib", "8", "--pool", "csv"
    )
    assert code == 0
    code, out, _ = run(cli, "vm", "list")
    assert "v1" in out and "running" in out and "HB " in out
    code, out, _ = run(cli, "vm", "list", "--host", "f2", "--no-heartbeat")
    assert code == 0 and "v1" not in out
    code, out, _ = run(cli, "manager", "list")
    assert code == 0 and "leader" in out
    assert run(cli, "vm", "stop", "v1", "--force")[0] == 0
    code, out, _ = run(cli, "job", "list")
    assert "vm.stop" in out and "Completed" in out
    code, out, _ = run(cli, "job", "show", "1")
    assert "cluster.create" in out and "create cluster c1" in out


def test_json_on_read_commands(cli: CliRunner) -> None:
    run(cli, "host", "add", "f1", "--uri", "fake://f1")
    for args in (
        ["host", "list"],
        ["host", "show", "f1"],
        ["cluster", "list"],
        ["vm", "list"],
        ["job", "list"],
        ["job", "show", "1"],
    ):
        code, out, _ = run(cli, *args, "--json")
        assert code == 0, args
        json.loads(out)
    assert json.loads(run(cli, "host", "show", "f1", "--json")[1])["pools"]


def test_errors_print_code_cause_fix_and_exit_by_category(cli: CliRunner) -> None:
    code, _, err = run(cli, "vm", "show", "nope")
    assert code == 3
    assert "error E_VM_NOT_FOUND" in err and "fix:" in err and "Traceback" not in err
    run(cli, "host", "add", "f1", "--uri", "fake://f1")
    code, _, err = run(cli, "host", "add", "f1", "--uri", "fake://f2")
    assert code == 4 and "E_HOST_EXISTS" in err
    run(cli, "vm", "create", "v1", "--host", "f1")
    code, _, err = run(cli, "vm", "delete", "v1")
    assert code == 5 and "E_VM_RUNNING" in err and "--force" in err
    code, _, err = run(cli, "vm", "create", "v2", "--host", "f1", "--memory", "999999")
    assert code == 6 and "E_NO_MEMORY" in err
    code, _, err = run(cli, "vm", "create", "v3", "--host", "f1", "--pool", "nope")
    assert code == 2 and "E_POOL_WITHOUT_DISK" in err
    code, _, err = run(cli, "job", "show", "999")
    assert code == 3 and "there is no job 999" in err


def test_failed_job_says_it_was_rolled_back(cli: CliRunner, fleet: object) -> None:
    from whimbrel.drivers.fake import FakeFleet

    assert isinstance(fleet, FakeFleet)
    fleet.hosts["f3"].up = False
    code, _, err = run(cli, "host", "add", "f3", "--uri", "fake://f3")
    assert code == 7 and "E_HOST_UNREACHABLE" in err and "everything it had done was undone" in err


def test_manager_down(settings: Settings) -> None:
    down = Settings(settings.home, settings.db_url, "http://127.0.0.1:9")
    with pytest.raises(WhimbrelError) as info:
        Client(down).get("/hosts")
    assert info.value.code == "E_MANAGER_DOWN" and "whimbrel serve" in info.value.fix
    both = Settings(settings.home, settings.db_url, "http://127.0.0.1:9, http://127.0.0.1:7")
    with pytest.raises(WhimbrelError) as info:
        Client(both).get("/hosts")
    assert "127.0.0.1:9" in info.value.detail and "127.0.0.1:7" in info.value.detail


def test_the_cli_goes_to_the_replica_that_answers(api: object, settings: Settings) -> None:
    from tests.conftest import Api

    assert isinstance(api, Api)
    c = Client(Settings(settings.home, settings.db_url, "http://127.0.0.1:9"))
    c._clients.append(api.http)  # a second replica: the app in process
    c.urls.append("in process")
    assert c.get("/hosts") == [] and c.http is api.http  # and sticks to it


def test_pki_commands(cli: CliRunner, settings: Settings, tmp_path: Path) -> None:
    code, _, _ = run(cli, "pki", "init")
    assert code == 0 and (settings.client_pki_dir / "clientkey.pem").exists()
    code, _, err = run(cli, "pki", "issue", "kvm7", "--out", str(tmp_path / "kvm7"))
    assert code == 2 and "E_PKI_NO_NAMES" in err
    code, _, _ = run(
        cli,
        "pki",
        "issue",
        "kvm7",
        "--name",
        "kvm7",
        "--name",
        "192.0.2.7",
        "--out",
        str(tmp_path / "kvm7"),
    )
    assert code == 0 and (tmp_path / "kvm7/servercert.pem").exists()
    code, _, err = run(
        cli, "pki", "issue", "kvm7", "--name", "kvm7", "--out", str(tmp_path / "kvm7")
    )
    assert code == 2 and "E_PKI_OUT_NOT_EMPTY" in err


def test_users_roles_tokens_and_the_audit_trail(cli: CliRunner, tmp_path: Path) -> None:
    pw = "a long pass phrase"
    result = cli.invoke(app, ["user", "add", "olga", "--password-file", "-"], input=pw + "\n")
    assert result.exit_code == 0, result.stdout
    assert run(cli, "role", "grant", "olga", "operator")[0] == 0
    code, out, _ = run(cli, "user", "list")
    assert code == 0 and "operator on the fleet" in out and "administrator on the fleet" in out
    secret = tmp_path / "olga.token"
    code, out, _ = run(cli, "token", "create", "--user", "olga", "--output", str(secret))
    assert code == 0 and oct(secret.stat().st_mode & 0o777) == "0o600"
    assert secret.read_text().startswith("wbt_") and secret.read_text().strip() not in out
    code, out, _ = run(cli, "token", "list", "--user", "olga", "--json")
    assert code == 0 and json.loads(out)[0]["user"] == "olga"
    code, _, err = run(cli, "role", "grant", "olga", "root")
    assert code == 2 and "E_INVALID_ROLE" in err
    code, _, err = run(cli, "user", "add", "eve")  # no terminal, no file: no password
    assert code == 2 and "E_PASSWORD_SOURCE" in err
    code, _, err = run(cli, "user", "add", "eve", "--password-file", str(tmp_path / "none"))
    assert code == 2 and "E_PASSWORD_SOURCE" in err and "cannot be read" in err
    code, out, _ = run(cli, "audit", "list", "--user", "admin")
    assert code == 0 and "role.grant" in out and "token.create" in out
    code, out, _ = run(cli, "audit", "list", "--failed", "--json")
    assert code == 0 and [e["code"] for e in json.loads(out)] == ["E_INVALID_ROLE"]
    code, out, _ = run(cli, "user", "whoami")
    assert code == 0 and out.startswith("admin (token ")
