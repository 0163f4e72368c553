"""whimbrel pki ...: the CA that hosts and manager trust each other through."""

from __future__ import annotations

from pathlib import Path

import typer

from whimbrel.cli.context import out, settings
from whimbrel.errors import InvalidInput
from whimbrel.pki import (
    CertificateAuthority,
    allowed_dns,
    write_client_bundle,
    write_host_bundle,
)

pki_app = typer.Typer(
    help="Certificates: the manager's CA and the hosts' TLS identities.", no_args_is_help=True
)


def _ca() -> CertificateAuthority:
    return CertificateAuthority.load_or_create(settings().pki_dir / "ca")


@pki_app.command("init")
def pki_init() -> None:
    """Create the CA and the manager's libvirt client certificate (kept if they exist)."""
    s = settings()
    _ca()
    write_client_bundle(_ca(), s.client_pki_dir)
    out.print(f"CA: {s.pki_dir / 'ca/cacert.pem'}")
    out.print(f"manager client certificate: {s.client_pki_dir} (libvirt pkipath layout)")


@pki_app.command("issue")
def pki_issue(
    host: str = typer.Argument(..., help="The host's name (certificate CN)."),
    name: list[str] = typer.Option(
        [], "--name", help="DNS name or IP address the host is reached at."
    ),
    out_dir: Path = typer.Option(..., "--out", help="Directory to write the host's files to."),
    peer: list[str] = typer.Option(
        [], "--peer", help="Another host that may migrate to this one (its cluster's nodes)."
    ),
) -> None:
    """Issue a host's server certificate (server use only) and its peer certificate (client
    use only, for peer-to-peer migration) from the manager's CA.

    Copy the files to the host: cacert.pem to /etc/pki/CA/, servercert.pem and clientcert.pem
    to /etc/pki/libvirt/, the keys to /etc/pki/libvirt/private/, and qemu/ to
    /etc/pki/qemu/ for encrypted migration streams; then set the printed
    tls_allowed_dn_list in libvirtd.conf, so that the host accepts only the manager and
    its peers as clients.
    """
    if not name:
        raise InvalidInput(
            "E_PKI_NO_NAMES",
            "a host certificate must name the addresses the host is reached at",
            "pass --name for each DNS name and IP address, e.g. --name kvm7 --name 192.0.2.7",
        )
    if out_dir.exists() and any(out_dir.iterdir()):
        raise InvalidInput(
            "E_PKI_OUT_NOT_EMPTY",
            f"{out_dir} is not empty; issuing would overwrite a host's keys",
            "give a new or empty directory",
        )
    write_host_bundle(_ca(), out_dir, host, tuple(name))
    out.print(f"issued {host} ({', '.join(name)}) into {out_dir}")
    dns = ", ".join(f'"{d}"' for d in allowed_dns((host, *peer)))
    out.print(f"libvirtd.conf on {host}: tls_allowed_dn_list = [ {dns} ]", soft_wrap=True)
