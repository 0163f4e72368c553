"""The pypsrp transport: host URIs, what a pipeline's answer means, and a host that
does not answer (a real WinRM HTTPS connection attempt to a closed port)."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from whimbrel.drivers import check_uri
from whimbrel.drivers.hyperv.scripts import script
from whimbrel.drivers.hyperv.transport import PsrpTransport, answer, parse_uri
from whimbrel.errors import HypervisorError, InvalidInput, WhimbrelError


def test_uris() -> None:
    c = parse_uri("hyperv://hv01.corp.example?auth=kerberos&ca=/etc/corp-ca.pem")
    assert (c.host, c.port, c.auth, c.ca) == (
        "hv01.corp.example",
        5986,
        "kerberos",
        "/etc/corp-ca.pem",
    )
    assert (
        parse_uri("hyperv://hv01:5999").auth == "kerberos"
        and parse_uri("hyperv://hv01:5999").port == 5999
    )
    c = parse_uri("hyperv://wg01?auth=negotiate&user=.\\wcadmin&password_file=/root/pw")
    assert (c.user, c.password_file) == (".\\wcadmin", "/root/pw")
    assert check_uri("hyperv://hv01?auth=credssp&user=a&password_file=/p") == "hyperv"
    for bad in (
        "hyperv://hv01?auth=basic",
        "hyperv://?auth=kerberos",
        "hyperv://hv01?auth=credssp",
        "hyperv://hv01?auth=certificate&cert=/c",
    ):
        with pytest.raises(InvalidInput) as info:
            check_uri(bad)
        assert info.value.code == "E_INVALID_HOST_URI"


def test_answers() -> None:
    ok = answer("vm_list", "hv01", ['{"ok": true, "data": []}'], [], False)
    assert ok == {"ok": True, "data": []}
    failed = answer("vm_list", "hv01", ['{"ok": false, "error": {"message": "x"}}'], [], False)
    assert failed["ok"] is False
    # A non-terminating error: the script answered ok, the error stream says otherwise.
    warned = answer("vm_list", "hv01", ['{"ok": true, "data": []}'], ["Access is denied"], False)
    assert warned == {"ok": False, "error": {"message": "Access is denied"}}
    for out, errs, had, code in (
        ([], ["The term 'Hyper-V\\Get-VM' is not recognized"], True, "E_HYPERV_SCRIPT"),
        ([], [], False, "E_HYPERV_SCRIPT"),
        (["Welcome to my profile"], [], False, "E_HYPERV_PROTOCOL"),
    ):
        with pytest.raises(HypervisorError) as info:
            answer("vm_list", "hv01", out, errs, had)
        assert info.value.code == code


def test_a_host_that_does_not_answer(tmp_path: Path) -> None:
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    pw = tmp_path / "pw"
    pw.write_text("secret")
    pw.chmod(0o600)
    uri = f"hyperv://127.0.0.1:{port}?auth=negotiate&user=admin&password_file={pw}"
    t = PsrpTransport(parse_uri(uri))
    with pytest.raises(WhimbrelError) as info:
        t.run(script("host_inventory"), {})
    assert info.value.code == "E_HOST_UNREACHABLE" and "5986" not in info.value.cause
    assert "WinRM" in info.value.fix
    t.close()


@pytest.mark.parametrize("mode", [0o644, 0o640])
def test_a_password_file_others_can_read_is_never_sent(tmp_path: Path, mode: int) -> None:
    """/etc/shadow (0640) named as a password file would go to the host as the password."""
    pw = tmp_path / "pw"
    pw.write_text("secret")
    pw.chmod(mode)
    for path in (pw, tmp_path):
        uri = f"hyperv://127.0.0.1:1?auth=negotiate&user=admin&password_file={path}"
        t = PsrpTransport(parse_uri(uri))
        with pytest.raises(WhimbrelError) as info:
            t.run(script("host_inventory"), {})
        assert info.value.code == "E_SECRET_FILE_REFUSED"
        t.close()
