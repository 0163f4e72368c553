"""Hypervisor drivers behind one small typed interface (:mod:`whimbrel.drivers.base`).

Drivers never import the store or each other.
"""

from __future__ import annotations

from whimbrel.drivers.base import HostDriver
from whimbrel.errors import InvalidInput


def open_host(uri: str) -> HostDriver:
    """Connect to the host behind ``uri``, choosing the driver by URI scheme.

    Raises:
        InvalidInput: the scheme names no driver.
        HostUnreachable, HostUntrusted: the host does not answer or refuses TLS.
    """
    scheme = uri.split(":", 1)[0]
    if scheme == "fake":
        from whimbrel.drivers.fake import FakeFleet

        return FakeFleet.default().open(uri)
    if scheme.startswith(("qemu", "test")):
        from whimbrel.config import load
        from whimbrel.drivers.libvirt.driver import LibvirtHost

        return LibvirtHost.open(uri, load().client_pki_dir)
    raise InvalidInput(
        "E_INVALID_HOST_URI",
        f"host URI {uri!r} names no driver Whimbrel knows",
        "use qemu+tls://ADDRESS/system for a KVM host (or fake://NAME in tests)",
    )
