"""The CA: certificates that chain, carry the right names and keep keys private."""

from __future__ import annotations

import ipaddress
import stat
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.x509.oid import ExtendedKeyUsageOID

from whimbrel.pki import (
    CertificateAuthority,
    allowed_dns,
    write_client_bundle,
    write_host_bundle,
)


def test_ca_is_created_once_and_reloaded(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    again = CertificateAuthority.load_or_create(tmp_path / "ca")
    assert ca.cert_pem == again.cert_pem
    assert stat.S_IMODE((tmp_path / "ca/cakey.pem").stat().st_mode) == 0o600


def test_host_bundle_names_and_chain(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    write_host_bundle(ca, tmp_path / "h1", "h1", ("h1", "10.77.0.1"))
    cert = x509.load_pem_x509_certificate((tmp_path / "h1/servercert.pem").read_bytes())
    cert.verify_directly_issued_by(ca.cert)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["h1"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.77.0.1")]
    eku = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.SERVER_AUTH]  # it can log in nowhere
    peer = x509.load_pem_x509_certificate((tmp_path / "h1/clientcert.pem").read_bytes())
    peer.verify_directly_issued_by(ca.cert)
    assert peer.subject.rfc4514_string() == "CN=whimbrel-peer-h1,O=Whimbrel"
    eku = peer.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    assert list(eku) == [ExtendedKeyUsageOID.CLIENT_AUTH]
    assert (tmp_path / "h1/qemu/client-cert.pem").read_bytes() == peer.public_bytes(
        serialization.Encoding.PEM
    )
    assert "CN=whimbrel-peer-h1,O=Whimbrel" in allowed_dns(("h1", "h2"))
    assert "O=Whimbrel,CN=whimbrel-manager" in allowed_dns(())
    for f in ("serverkey.pem", "clientkey.pem", "peerkey.pem", "qemu/server-key.pem"):
        assert stat.S_IMODE((tmp_path / "h1" / f).stat().st_mode) == 0o600
    assert (tmp_path / "h1/qemu/ca-cert.pem").read_bytes() == ca.cert_pem


def test_client_bundle_is_kept(tmp_path: Path) -> None:
    ca = CertificateAuthority.load_or_create(tmp_path / "ca")
    write_client_bundle(ca, tmp_path / "m")
    first = (tmp_path / "m/clientcert.pem").read_bytes()
    write_client_bundle(ca, tmp_path / "m")
    assert (tmp_path / "m/clientcert.pem").read_bytes() == first
    cert = x509.load_pem_x509_certificate(first)
    assert "whimbrel-manager" in cert.subject.rfc4514_string()
