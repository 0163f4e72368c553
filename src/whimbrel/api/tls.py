"""The API's own TLS: a certificate given to 'serve', or one issued by Whimbrel's CA.

Tokens and passwords cross the API, so it listens in clear text on loopback only: a
bind to any other address without TLS is refused before anything listens."""

from __future__ import annotations

import ipaddress
import socket
import ssl
from pathlib import Path

from whimbrel.config import Settings
from whimbrel.errors import InvalidInput
from whimbrel.pki import CertificateAuthority, write_pem


def loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def server_files(
    s: Settings, host: str, cert: Path | None, key: Path | None, from_ca: bool
) -> tuple[Path, Path] | None:
    """The certificate and key the API serves with (None: clear text, loopback only)."""
    if (cert is None) != (key is None):
        raise InvalidInput(
            "E_API_TLS_INCOMPLETE",
            "--tls-cert and --tls-key go together",
            "give both (PEM files), or --tls for a certificate from Whimbrel's CA",
        )
    if cert is not None and key is not None:
        for f in (cert, key):
            if not f.is_file():
                raise InvalidInput(
                    "E_API_TLS_FILE", f"{f} is not a readable file", "give PEM files"
                )
        try:
            ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(cert, key)
        except (ssl.SSLError, OSError) as exc:
            raise InvalidInput(
                "E_API_TLS_FILE",
                f"{cert} and {key} are not a certificate and its private key",
                "give the PEM certificate (with its chain) and the matching key",
                str(exc),
            ) from exc
        return cert, key
    if from_ca:
        return issue(s, host)
    if not loopback(host):
        raise InvalidInput(
            "E_API_TLS_REQUIRED",
            f"the API would listen on {host} in clear text: tokens and passwords would "
            "cross the network readable",
            "add --tls (a certificate from Whimbrel's CA) or --tls-cert/--tls-key, or listen "
            "on 127.0.0.1",
        )
    return None


def issue(s: Settings, host: str) -> tuple[Path, Path]:
    """A server certificate from Whimbrel's CA for this machine and ``host`` (kept)."""
    d = s.pki_dir / "api"
    cert, key = d / "cert.pem", d / "key.pem"
    names = tuple(dict.fromkeys([host, socket.gethostname(), "localhost", "127.0.0.1"]))
    if not cert.exists() or not key.exists():
        ca = CertificateAuthority.load_or_create(s.pki_dir / "ca")
        leaf = ca.issue(socket.gethostname(), server=True, names=names, client=False)
        write_pem(cert, leaf.cert_pem + ca.cert_pem)
        write_pem(key, leaf.key_pem, private=True)
    return cert, key


def client_context(s: Settings) -> ssl.SSLContext:
    """What the CLI trusts for an https:// manager: ``WHIMBREL_CA_FILE``, else Whimbrel's
    own CA when this machine has it, else the system's."""
    import os

    ca = os.environ.get("WHIMBREL_CA_FILE", "")
    own = s.pki_dir / "ca" / "cacert.pem"
    if ca:
        return ssl.create_default_context(cafile=ca)
    if own.exists():
        return ssl.create_default_context(cafile=str(own))
    return ssl.create_default_context()
