"""Storage pools and networks of a lab host, defined through its own libvirtd.

Done over the host's unix socket (a path on this machine), so provisioning
never depends on the TLS set-up it is there to serve.
"""

from __future__ import annotations

import libvirt

import whimbrel.drivers.libvirt  # noqa: F401  (keeps libvirt quiet on stderr)
from whimbrel.lab.topology import (
    LOCAL_DIR,
    LOCAL_POOL,
    VM_NETWORK,
    LabHost,
    shared_dir,
    shared_pool,
)


def _pool_xml(name: str, path: str) -> str:
    return f"<pool type='dir'><name>{name}</name><target><path>{path}</path></target></pool>"


def _network_xml(name: str, bridge: str) -> str:
    return (
        f"<network><name>{name}</name><forward mode='bridge'/><bridge name='{bridge}'/></network>"
    )


def _ensure_pool(conn: libvirt.virConnect, name: str, path: str) -> None:
    try:
        pool = conn.storagePoolLookupByName(name)
    except libvirt.libvirtError:
        pool = conn.storagePoolDefineXML(_pool_xml(name, path), 0)
    pool.setAutostart(1)
    if not pool.isActive():
        pool.create(0)


def _ensure_network(conn: libvirt.virConnect, name: str, bridge: str) -> None:
    try:
        net = conn.networkLookupByName(name)
    except libvirt.libvirtError:
        net = conn.networkDefineXML(_network_xml(name, bridge))
    net.setAutostart(1)
    if not net.isActive():
        net.create()


def provision_host(host: LabHost) -> None:
    conn = libvirt.open(host.local_uri)
    try:
        _ensure_pool(conn, LOCAL_POOL, LOCAL_DIR)
        _ensure_pool(conn, shared_pool(host.cluster), f"{shared_dir(host.cluster)}/images")
        _ensure_network(conn, VM_NETWORK, "br-vm")
        # The first capabilities call makes libvirt probe QEMU (seconds); do it
        # now, in parallel for all hosts, rather than in the user's first command.
        conn.getCapabilities()
    finally:
        conn.close()
