"""Hypervisor drivers behind one small typed interface (:mod:`whimbrel.drivers.base`).

Drivers never import the store or each other.
"""

from __future__ import annotations

from pathlib import Path

from whimbrel.drivers.base import HostDriver
from whimbrel.errors import InvalidInput


def check_uri(uri: str) -> str:
    """Return the driver name for ``uri``, or raise the one error for a bad URI."""
    scheme = uri.split(":", 1)[0]
    if "://" in uri and scheme == "fake":
        return "fake"
    if "://" in uri and scheme.startswith(("qemu", "test")):
        return "libvirt"
    if "://" in uri and scheme == "hyperv":
        from whimbrel.drivers.hyperv.transport import parse_uri

        parse_uri(uri)
        return "hyperv"
    raise InvalidInput(
        "E_INVALID_HOST_URI",
        f"host URI {uri!r} names no driver Whimbrel knows",
        "use qemu+tls://ADDRESS/system for a KVM host, hyperv://HOST?auth=kerberos for a "
        "Hyper-V host (or fake://NAME in tests)",
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
