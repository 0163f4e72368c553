"""Whimbrel's certificate authority: trust between the manager and its hosts.

The manager creates one CA, its own TLS client certificate, and the server and
client certificates of the hosts it sets up (the lab's hosts, or real ones
with ``whimbrel pki issue``).  Files use libvirt's ``pkipath`` names
(cacert.pem, clientcert.pem, ...); QEMU's migration TLS names are written
beside them by :func:`write_host_bundle`.
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

VALIDITY = dt.timedelta(days=825)
MANAGER_CN = "whimbrel-manager"


@dataclass(frozen=True)
class Issued:
    cert_pem: bytes
    key_pem: bytes


def _name(cn: str) -> x509.Name:
    return x509.Name(
        [
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Whimbrel"),
            x509.NameAttribute(NameOID.COMMON_NAME, cn),
        ]
    )


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def write_pem(path: Path, data: bytes, private: bool = False) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if private else 0o644)
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    tmp.replace(path)


class CertificateAuthority:
    def __init__(self, cert: x509.Certificate, key: ec.EllipticCurvePrivateKey):
        self.cert = cert
        self.key = key

    @property
    def cert_pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    @classmethod
    def load_or_create(cls, directory: Path, cn: str = "Whimbrel CA") -> CertificateAuthority:
        cert_path, key_path = directory / "cacert.pem", directory / "cakey.pem"
        if cert_path.exists() and key_path.exists():
            cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
            key = serialization.load_pem_private_key(key_path.read_bytes(), None)
            assert isinstance(key, ec.EllipticCurvePrivateKey)
            return cls(cert, key)
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(_name(cn))
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY * 4)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(
                x509.KeyUsage(False, False, False, False, False, True, True, False, False),
                critical=True,
            )
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), False)
            .sign(key, hashes.SHA256())
        )
        ca = cls(cert, key)
        write_pem(key_path, _key_pem(key), private=True)
        write_pem(cert_path, ca.cert_pem)
        return ca

    def issue(
        self, cn: str, *, server: bool, names: tuple[str, ...] = (), client: bool = True
    ) -> Issued:
        """A leaf certificate for ``cn``; ``names`` become DNS or IP subject alt names."""
        key = ec.generate_private_key(ec.SECP256R1())
        now = dt.datetime.now(dt.UTC)
        usages = []
        if server:
            usages.append(ExtendedKeyUsageOID.SERVER_AUTH)
        if client:
            usages.append(ExtendedKeyUsageOID.CLIENT_AUTH)
        builder = (
            x509.CertificateBuilder()
            .subject_name(_name(cn))
            .issuer_name(self.cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(minutes=5))
            .not_valid_after(now + VALIDITY)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(
                x509.KeyUsage(True, False, True, False, False, False, False, False, False),
                critical=True,
            )
            .add_extension(x509.ExtendedKeyUsage(usages), critical=False)
            .add_extension(
                x509.AuthorityKeyIdentifier.from_issuer_public_key(self.key.public_key()), False
            )
        )
        if names:
            alt: list[x509.GeneralName] = []
            for n in names:
                try:
                    alt.append(x509.IPAddress(ipaddress.ip_address(n)))
                except ValueError:
                    alt.append(x509.DNSName(n))
            builder = builder.add_extension(x509.SubjectAlternativeName(alt), critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        return Issued(cert.public_bytes(serialization.Encoding.PEM), _key_pem(key))


def write_client_bundle(ca: CertificateAuthority, directory: Path, cn: str = MANAGER_CN) -> None:
    """cacert.pem, clientcert.pem, clientkey.pem: what libvirt's ``pkipath=`` expects."""
    if (directory / "clientcert.pem").exists() and (directory / "clientkey.pem").exists():
        return
    leaf = ca.issue(cn, server=False)
    write_pem(directory / "cacert.pem", ca.cert_pem)
    write_pem(directory / "clientkey.pem", leaf.key_pem, private=True)
    write_pem(directory / "clientcert.pem", leaf.cert_pem)


def peer_cn(host: str) -> str:
    """The CN of a host's peer (client) identity, distinct from its server name."""
    return f"whimbrel-peer-{host}"


def allowed_dns(peers: tuple[str, ...]) -> list[str]:
    """libvirtd's ``tls_allowed_dn_list`` for a host: the manager and these peers' client
    identities, each in both orders GnuTLS may print a DN in (it changed in 3.5.7)."""
    out = []
    for cn in (MANAGER_CN, *(peer_cn(p) for p in peers)):
        out += [f"O=Whimbrel,CN={cn}", f"CN={cn},O=Whimbrel"]
    return out


def write_host_bundle(
    ca: CertificateAuthority, directory: Path, cn: str, names: tuple[str, ...]
) -> None:
    """A host's two identities, in libvirt's and QEMU's file names.

    The server certificate (server use only) is what the host shows the manager and
    other hosts; it cannot log in anywhere.  The peer certificate (client use only,
    CN ``whimbrel-peer-HOST``) is what the host presents when it connects to another
    host itself (peer-to-peer migration), and what the other hosts' ``tls_allowed_dn_list``
    admits: a host of one cluster cannot act as a client of another cluster's hosts.
    ``peercert.pem`` and ``peerkey.pem`` keep the peer identity as issued.
    """
    server = ca.issue(cn, server=True, names=names, client=False)
    peer = ca.issue(peer_cn(cn), server=False)
    files = {
        "cacert.pem": ca.cert_pem,
        "servercert.pem": server.cert_pem,
        "serverkey.pem": server.key_pem,
        "clientcert.pem": peer.cert_pem,
        "clientkey.pem": peer.key_pem,
        "peercert.pem": peer.cert_pem,
        "peerkey.pem": peer.key_pem,
        # QEMU's tls-creds-x509 directory layout, for encrypted migration streams.
        "qemu/ca-cert.pem": ca.cert_pem,
        "qemu/server-cert.pem": server.cert_pem,
        "qemu/server-key.pem": server.key_pem,
        "qemu/client-cert.pem": peer.cert_pem,
        "qemu/client-key.pem": peer.key_pem,
    }
    for rel, data in files.items():
        write_pem(directory / rel, data, private=rel.endswith("key.pem"))
