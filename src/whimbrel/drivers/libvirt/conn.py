"""One libvirt connection to a host: what every part of the driver stands on.

It owns the connection, the host's name for messages, the URI with the manager's
own credentials, and the one place where libvirt errors become Whimbrel's.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit

import libvirt

from whimbrel.drivers.libvirt.errors import call_error
from whimbrel.drivers.libvirt.uri import with_pkipath

T = TypeVar("T")


class Connection:
    def __init__(self, conn: libvirt.virConnect, uri: str, pki_dir: Path | None = None):
        self.conn = conn
        self.uri = uri
        self._pki_dir = pki_dir
        self.open_uri = with_pkipath(uri, pki_dir)
        self.name = urlsplit(uri).hostname or uri

    def open_uri_for(self, uri: str) -> str:
        """``uri`` with the manager's credentials, for a connection of the driver's own."""
        return with_pkipath(uri, self._pki_dir)

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except libvirt.libvirtError as exc:
            raise call_error(self.name, what, exc) from exc

    def _lookup(self, name: str) -> libvirt.virDomain:
        return self._call(f"VM {name}", lambda: self.conn.lookupByName(name))

    def delete_volume(self, path: str) -> None:
        """Delete a disk image (or state file) in one of the host's pools; gone already
        is fine.  Raises: HostUnreachable, HypervisorError."""
        try:
            vol = self.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError:
            active = libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE
            pools = self._call("storage pools", lambda: self.conn.listAllStoragePools(active))
            for pool in pools:
                self._call(f"refresh pool {pool.name()}", partial(pool.refresh, 0))
            try:
                vol = self.conn.storageVolLookupByPath(path)
            except libvirt.libvirtError:
                return
        self._call(f"delete disk {path}", lambda: vol.delete(0))
