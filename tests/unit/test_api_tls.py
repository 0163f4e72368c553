"""The API listens in clear text on loopback only; TLS from given files or Whimbrel's CA."""

from __future__ import annotations

import ssl
from pathlib import Path

import pytest
from cryptography import x509

from whimbrel.api.tls import client_context, loopback, server_files
from whimbrel.config import Settings
from whimbrel.errors import InvalidInput


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.2", "::1", "localhost"])
def test_loopback_may_be_clear_text(settings: Settings, host: str) -> None:
    assert loopback(host) and server_files(settings, host, None, None, False) is None


@pytest.mark.parametrize("host", ["0.0.0.0", "10.78.0.254", "::", "manager.example"])
def test_any_other_address_needs_tls(settings: Settings, host: str) -> None:
    with pytest.raises(InvalidInput) as info:
        server_files(settings, host, None, None, False)
    assert info.value.code == "E_API_TLS_REQUIRED" and "--tls" in info.value.fix


def test_bad_tls_files_are_refused(settings: Settings, tmp_path: Path) -> None:
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate")
    cases = [(junk, None, "E_API_TLS_INCOMPLETE"), (junk, junk, "E_API_TLS_FILE"),
             (tmp_path / "none.pem", junk, "E_API_TLS_FILE")]  # fmt: skip
    for cert, key, code in cases:
        with pytest.raises(InvalidInput) as info:
            server_files(settings, "0.0.0.0", cert, key, False)
        assert info.value.code == code


def test_a_certificate_from_the_ca_names_the_address_and_is_trusted_by_the_cli(
    settings: Settings,
) -> None:
    files = server_files(settings, "10.78.0.254", None, None, True)
    assert files is not None
    cert, key = files
    assert oct(key.stat().st_mode & 0o777) == "0o600"
    leaf = x509.load_pem_x509_certificates(cert.read_bytes())[0]
    san = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert "10.78.0.254" in [str(ip) for ip in san.get_values_for_type(x509.IPAddress)]
    assert server_files(settings, "10.78.0.254", None, None, True) == files  # kept
    assert server_files(settings, "0.0.0.0", cert, key, False) == (cert, key)
    ctx = client_context(settings)
    assert ctx.verify_mode == ssl.CERT_REQUIRED and ctx.get_ca_certs()
