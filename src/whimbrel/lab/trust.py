"""Peer trust between lab hosts, and how to break it in one direction.

A host's peer identity is the client certificate of its bundle (pki.write_host_bundle):
what it presents when it connects to another host itself (peer-to-peer
migration).  Breaking trust swaps that half for a certificate from a CA the
other hosts have never seen.  The host keeps trusting that CA itself, so its
own TLS context still loads and the failure is exactly the real one: the
destination refuses the source's certificate, and moves *to* the host still work.
"""

from __future__ import annotations

from pathlib import Path

from whimbrel.pki import CertificateAuthority, write_pem

FOREIGN_CN = "Whimbrel lab foreign CA"


def untrust(pki: Path, foreign_ca_dir: Path, cn: str) -> None:
    foreign = CertificateAuthority.load_or_create(foreign_ca_dir, FOREIGN_CN)
    leaf = foreign.issue(cn, server=False)
    lab_ca = (pki / "qemu" / "ca-cert.pem").read_bytes()  # the lab CA, never edited
    write_pem(pki / "cacert.pem", lab_ca + foreign.cert_pem)
    write_pem(pki / "clientcert.pem", leaf.cert_pem)
    write_pem(pki / "clientkey.pem", leaf.key_pem, private=True)


def retrust(pki: Path) -> None:
    """Back to the host's own peer identity from the lab CA."""
    write_pem(pki / "cacert.pem", (pki / "qemu" / "ca-cert.pem").read_bytes())
    write_pem(pki / "clientcert.pem", (pki / "peercert.pem").read_bytes())
    write_pem(pki / "clientkey.pem", (pki / "peerkey.pem").read_bytes(), private=True)


def trusted(pki: Path) -> bool:
    return (pki / "clientcert.pem").read_bytes() == (pki / "peercert.pem").read_bytes()
