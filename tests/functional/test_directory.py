"""Delegation against a real Active Directory: a Samba AD domain controller in the lab.

The check and ``whimbrel hyperv delegation grant`` read and write the computer
accounts over LDAPS (certificate checked against the lab CA); the last test puts
the same directory behind a two-cluster Hyper-V estate (transport double) and
lets the manager's preflight find, and the grant fix, a delegation missing in
one direction.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tests.conftest import Api
from whimbrel.ad import delegation
from whimbrel.ad.directory import TRUSTED_TO_AUTH_FOR_DELEGATION, LdapDirectory
from whimbrel.cli.main import app
from whimbrel.config import Settings
from whimbrel.errors import WhimbrelError
from whimbrel.lab.directory import DcSpec, SambaDc

pytestmark = pytest.mark.lab
SPEC = DcSpec(root=Path("/var/tmp/whimbrel-ad-t"), octet=84)


@pytest.fixture(scope="module")
def dc() -> Iterator[SambaDc]:
    if os.geteuid() != 0 or shutil.which("samba") is None:
        if os.environ.get("WHIMBREL_REQUIRE_LAB"):
            pytest.fail("the directory tests must run here: root and samba (make deps)")
        pytest.skip("needs root and samba")
    d = SambaDc(SPEC)
    d.down()  # leftovers of an interrupted run
    d.up()
    yield d
    d.down()


def _codes(d: LdapDirectory, a: str, b: str) -> list[str]:
    return [f.code for f in delegation.check(d, a, b)]


def test_grant_both_directions_then_check(dc: SambaDc) -> None:
    d = dc.directory()
    assert _codes(d, "HV01", "HV02") == ["E_DELEGATION_MISSING"]
    done = delegation.grant(d, "HV01", "HV02")
    assert [g.source for g in done] == ["HV01", "HV02"]
    hv01 = d.computer("HV01")
    assert set(hv01.delegate_to) == {
        "cifs/HV02",
        "cifs/hv02.corp.whimbrel.test",
        "Microsoft Virtual System Migration Service/HV02",
        "Microsoft Virtual System Migration Service/hv02.corp.whimbrel.test",
    }
    assert hv01.uac & TRUSTED_TO_AUTH_FOR_DELEGATION  # "use any authentication protocol"
    assert _codes(d, "HV01", "HV02") == [] and _codes(d, "HV02", "HV01") == []
    again = delegation.grant(d, "HV01", "HV02")
    assert [g.added for g in again] == [(), ()]  # nothing twice


def test_one_direction_missing_is_named(dc: SambaDc) -> None:
    d = dc.directory()
    delegation.grant(d, "HV03", "HV04")
    hv04 = d.computer("HV04")
    d.set_delegation("HV04", [s for s in hv04.delegate_to if "hv03" not in s.lower()], hv04.uac)
    assert _codes(d, "HV03", "HV04") == []
    (f,) = delegation.check(d, "HV04", "HV03")
    assert (f.code, f.subject) == ("E_DELEGATION_MISSING", "hosts HV04 → HV03")
    assert "klist purge" in f.fix  # replication and tickets take time: said


def test_kerberos_only_and_unknown_computer_and_bad_login(dc: SambaDc, tmp_path: Path) -> None:
    d = dc.directory()
    delegation.grant(d, "HV01", "HV03", kerberos_only=True)
    assert "E_DELEGATION_KERBEROS_ONLY" in _codes(d, "HV03", "HV01")
    assert _codes(d, "HV01", "HV09") == ["E_AD_COMPUTER_NOT_FOUND"]
    bad = tmp_path / "pw"
    bad.write_text("wrong")
    with pytest.raises(WhimbrelError) as info:  # readable by others: not read at all
        LdapDirectory(replace(dc.config(), password_file=str(bad))).computer("HV01")
    assert info.value.code == "E_SECRET_FILE_REFUSED"
    bad.chmod(0o600)
    with pytest.raises(WhimbrelError) as info:
        LdapDirectory(replace(dc.config(), password_file=str(bad))).computer("HV01")
    assert info.value.code == "E_AD_BIND"
    with pytest.raises(WhimbrelError) as info:
        LdapDirectory(replace(dc.config(), ca="/etc/ssl/certs/ca-certificates.crt")).computer(
            "HV01"
        )
    assert info.value.code == "E_AD_CERTIFICATE"  # the DC's certificate is not trusted


def test_manager_preflight_reads_the_directory_and_the_grant_fixes_it(
    dc: SambaDc, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.unit.hyperv_estate import build, new_vm, register
    from whimbrel.manager import Manager

    d = dc.directory()
    for a in ("HV01", "HV02", "HV03", "HV04"):  # a clean slate for this test
        c = d.computer(a)
        d.set_delegation(a, [], c.uac)
    estate = build(domain="corp.whimbrel.test", grant_all=False)
    estate.directory = d  # type: ignore[assignment]
    m = Manager(settings, opener=estate.open)
    m.start()
    try:
        api = Api(m)
        register(api, estate)
        new_vm(api, "web1", "hv01")
        body = {"to_cluster": "beta", "to": "hv03"}
        plan = api.call("POST", "/vms/web1/migrate/check", json=body).json()
        found = {(f["code"], f["subject"]) for f in plan["findings"]}
        assert ("E_DELEGATION_MISSING", "hosts HV01 → HV03") in found
        assert ("E_DELEGATION_MISSING", "hosts HV03 → HV01") in found
        # The fix the finding names, run as the administrator would.
        for k, v in dc.env().items():
            monkeypatch.setenv(k, v)
        r = CliRunner().invoke(app, ["hyperv", "delegation", "grant", "HV01", "HV03"])
        assert r.exit_code == 0, r.output
        r = CliRunner().invoke(app, ["hyperv", "delegation", "check", "HV01", "HV03"])
        assert r.exit_code == 0 and "may delegate to each other" in r.output, r.output
        body = {"to_cluster": "beta", "to": "hv03"}
        plan = api.call("POST", "/vms/web1/migrate/check", json=body).json()
        assert [f for f in plan["findings"] if f["severity"] == "error"] == []
        api.ok("POST", "/vms/web1/migrate", body)
        assert estate.where("web1").name == "HV03"  # type: ignore[union-attr]
    finally:
        m.stop()


def test_a_directory_user_logs_in_with_the_directorys_password(
    dc: SambaDc, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    from whimbrel.manager import Manager

    dc.user("dora", "Directory-Pass-42")
    for k, v in dc.env().items():
        monkeypatch.setenv(k, v)
    m = Manager(settings)
    try:
        admin = Api(m)
        admin.call("POST", "/users", json={"name": "dora", "realm": "ldap"})
        admin.call("POST", "/users/dora/grants", json={"role": "read-only"})
        # A directory user has no password in Whimbrel: giving one is refused.
        assert admin.error("POST", "/users", {"name": "x", "realm": "ldap", "password": "p"}) == (
            400,
            "E_PASSWORD_FOR_DIRECTORY_USER",
        )
        anon = Api(m)
        anon.http.headers.pop("Authorization")
        for wrong in ("Directory-Pass-43", ""):
            r = anon.call("POST", "/login", json={"user": "dora", "password": wrong})
            assert r.status_code == 401 and r.json()["error"]["code"] == "E_LOGIN_FAILED"
        r = anon.call("POST", "/login", json={"user": "dora", "password": "Directory-Pass-42"})
        assert r.status_code == 200, r.text
        anon.http.headers["Authorization"] = f"Bearer {r.json()['token']}"
        assert anon.call("GET", "/whoami").json()["user"] == "dora"
        assert anon.error("POST", "/clusters", {"name": "c9"}) == (403, "E_FORBIDDEN")
        # A directory that does not answer is named; local users still log in.
        monkeypatch.setenv("WHIMBREL_AD_URL", "ldaps://127.0.0.1:1")
        r = anon.call("POST", "/login", json={"user": "dora", "password": "Directory-Pass-42"})
        assert r.status_code == 502, r.text
        assert r.json()["error"]["code"] == "E_LOGIN_DIRECTORY_UNREACHABLE"
    finally:
        m.stop()
