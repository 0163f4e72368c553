"""Hypervisor drivers behind one small typed interface (:mod:`whimbrel.drivers.base`).

Drivers never import the store or each other.
"""

from __future__ import annotations

import re
from pathlib import Path
from urllib.parse import urlsplit

from whimbrel.drivers.base import HostDriver
from whimbrel.errors import InvalidInput

_HOSTNAME = re.compile(r"[A-Za-z0-9]([A-Za-z0-9.-]{0,252})|\[?[0-9A-Fa-f:.]+\]?")


def check_uri(uri: str) -> str:
    """Return the driver name for ``uri``, or raise the one error for a bad URI.

    Only transports Whimbrel supports, with nothing that changes how it connects: libvirt's
    URI options can run a program (``qemu+ext``, ``command=``), switch the certificate check
    off (``no_verify``) or replace the manager's credentials (``pkipath``), all as root."""
    scheme = uri.split(":", 1)[0]
    if "://" in uri and scheme == "fake":
        return "fake"
    if scheme == "qemu+tls":
        _check_libvirt(uri)
        return "libvirt"
    if "://" in uri and scheme == "hyperv":
        from whimbrel.drivers.hyperv.transport import parse_uri

        parse_uri(uri)
        return "hyperv"
    raise InvalidInput(
        "E_INVALID_HOST_URI",
        f"host URI {uri!r} names no transport Whimbrel supports",
        "use qemu+tls://ADDRESS/system for a KVM host, hyperv://HOST?auth=kerberos for a "
        "Hyper-V host (or fake://NAME in tests)",
    )


def _check_libvirt(uri: str) -> None:
    u = urlsplit(uri)
    try:
        host, port = u.hostname, u.port
    except ValueError:
        host, port = None, None
    if not host or not _HOSTNAME.fullmatch(host) or u.path != "/system":
        raise InvalidInput(
            "E_INVALID_HOST_URI",
            f"{uri!r} is not a KVM host URI",
            "use qemu+tls://ADDRESS[:PORT]/system",
        )
    if u.query or u.fragment or u.username or u.password:
        raise InvalidInput(
            "E_HOST_URI_OPTION_REFUSED",
            f"{uri!r} carries options; a host URI may not change how the manager connects "
            "(a program to run, the certificate check, other credentials)",
            f"use qemu+tls://{host}{f':{port}' if port else ''}/system; the manager's own TLS "
            "credentials are used",
        )


def keeps_own_cluster(uri: str) -> bool:
    """Whether the host's hypervisor keeps its own failover cluster, roles and migration
    settings (Hyper-V), which Whimbrel must then write there too.  A KVM host's live in
    Whimbrel's store alone: there is nothing to tell it, and no reason to connect."""
    return check_uri(uri) == "hyperv"


def open_host(uri: str, pki_dir: Path | None = None) -> HostDriver:
    """Connect to the host behind ``uri``, choosing the driver by URI scheme.

    ``pki_dir`` holds the manager's TLS client credentials for ``+tls`` URIs.

    Raises:
        InvalidInput: the scheme names no driver.
        HostUnreachable, HostUntrusted: the host does not answer or refuses TLS.
    """
    kind = check_uri(uri)
    if kind == "fake":
        from whimbrel.drivers.fake import FakeFleet

        return FakeFleet.default().open(uri)
    if kind == "hyperv":
        from whimbrel.ad.directory import from_env
        from whimbrel.drivers.hyperv.driver import HyperVHost
        from whimbrel.drivers.hyperv.transport import PsrpTransport, parse_uri

        return HyperVHost(uri, PsrpTransport(parse_uri(uri)), from_env())
    from whimbrel.drivers.libvirt.driver import LibvirtHost

    return LibvirtHost.open(uri, pki_dir)
