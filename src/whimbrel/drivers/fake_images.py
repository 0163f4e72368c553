"""The fake fleet's volumes, images, clones and CD-ROMs: a file is seen by a host whose pool
directory holds it, a clone needs room in its pool, and its first bytes say what it is."""

from __future__ import annotations

import dataclasses
import struct
from typing import TYPE_CHECKING

from whimbrel.domain.image import HEAD_BYTES, QCOW2_MAGIC, ImageInfo, is_iso
from whimbrel.domain.vm import DomainSpec
from whimbrel.errors import Conflict, InsufficientResources, NotFound

if TYPE_CHECKING:
    from whimbrel.drivers.fake import FakeFleet, FakeHostState, _Domain

MIB = 1 << 20
POOL_FREE = 1 << 39  # what a fake pool has free unless a test says otherwise


def qcow2_header(size_bytes: int) -> bytes:
    """The first bytes of a sound qcow2 image of that virtual size (version 3, 64 KiB)."""
    return QCOW2_MAGIC + struct.pack(">IQIIQ", 3, 0, 0, 16, size_bytes) + bytes(40)


class FakeImages:
    fleet: FakeFleet
    h: FakeHostState

    def _alive(self) -> None:  # FakeHost's
        raise NotImplementedError

    def _dom(self, name: str) -> _Domain:  # FakeHost's
        raise NotImplementedError

    def sees(self, path: str) -> str | None:
        """The pool of this host whose directory holds ``path``."""
        for pool, base in self.h.pools.items():
            if path.startswith(base.rstrip("/") + "/"):
                return pool
        return None

    def create_volume(self, pool: str, name: str, size_bytes: int, fmt: str) -> str:
        self._alive()
        base = self.h.pools.get(pool)
        if base is None:
            raise NotFound(
                "E_POOL_NOT_FOUND", f"host {self.h.name} has no pool {pool!r}", "refresh"
            )
        path = f"{base}/{name}"
        with self.fleet.lock:
            if path in self.fleet.volumes:
                raise Conflict("E_VOLUME_EXISTS", f"{path} exists", "delete it or choose a name")
            self.fleet.volumes[path] = size_bytes
            if fmt == "qcow2":
                self.fleet.images[path] = qcow2_header(size_bytes)
        return path

    def delete_volume(self, path: str) -> None:
        self._alive()
        with self.fleet.lock:
            self.fleet.volumes.pop(path, None)
            self.fleet.images.pop(path, None)
            self.fleet.backing.pop(path, None)

    def image(self, path: str) -> tuple[ImageInfo, bytes]:
        self._alive()
        pool = self.sees(path)
        with self.fleet.lock:
            size = self.fleet.volumes.get(path)
            head = self.fleet.images.get(path, b"")
        if pool is None or size is None:
            raise NotFound(
                "E_IMAGE_NOT_FOUND",
                f"host {self.h.name} has no file {path} in any of its storage pools",
                "copy it into a pool's directory on the host",
            )
        fmt = "qcow2" if head.startswith(QCOW2_MAGIC) else "iso" if is_iso(head) else "raw"
        return ImageInfo(path, pool, fmt, size, size), head[:HEAD_BYTES]

    def clone_volume(self, pool: str, name: str, source: str, size_bytes: int, linked: bool) -> str:
        info, _head = self.image(source)
        base = self.h.pools.get(pool)
        if base is None:
            raise NotFound("E_POOL_NOT_FOUND", f"host {self.h.name} has no pool {pool!r}", "")
        path = f"{base}/{name}"
        needed = 16 * MIB if linked else info.size_bytes
        free = self.h.pool_free.get(pool, POOL_FREE)
        if needed > free:
            raise InsufficientResources(
                "E_NO_SPACE",
                f"pool {pool} on host {self.h.name} has {free // MIB} MiB free; a copy of "
                f"{source} needs {needed // MIB} MiB",
                "free space in the pool, choose another pool, or use a linked clone",
            )
        size = max(size_bytes, info.size_bytes)
        with self.fleet.lock:
            if path in self.fleet.volumes:
                raise Conflict("E_VOLUME_EXISTS", f"{path} exists", "delete it or choose a name")
            self.fleet.volumes[path] = size
            self.fleet.images[path] = qcow2_header(size)
            if linked:
                self.fleet.backing[path] = source
            else:
                self.fleet.content[path] = self.fleet.content.get(source, "")
        return path

    def describe(self, name: str) -> DomainSpec:
        with self.fleet.lock:
            return self._dom(name).spec

    def set_cdrom(self, name: str, path: str) -> None:
        with self.fleet.lock:
            d = self._dom(name)
            d.spec = dataclasses.replace(d.spec, cdrom=path)
