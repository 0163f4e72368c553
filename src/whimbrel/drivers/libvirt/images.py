"""Images, clones and CD-ROMs on a libvirt host, all through libvirt's storage API (so a
remote host needs nothing but its libvirtd): a file is looked up in the host's pools,
its header read with a volume download, and a clone made by libvirt itself (a full
copy through ``qemu-img convert``, or a qcow2 overlay on a backing file)."""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Callable
from functools import partial

import libvirt

from whimbrel.domain.image import HEAD_BYTES, ImageInfo, corrupt
from whimbrel.domain.vm import DomainSpec
from whimbrel.drivers.libvirt.conn import Connection
from whimbrel.drivers.libvirt.errors import call_error
from whimbrel.drivers.libvirt.xml import cdrom_xml, parse_domain, volume_xml
from whimbrel.errors import Conflict, InsufficientResources, NotFound, WrongState

MIB = 1 << 20


class Images(Connection):
    def _volume(self, path: str) -> libvirt.virStorageVol:
        """The volume at ``path``, the pools read again first (a file copied in by hand
        is unknown to libvirt until its pool is refreshed)."""
        active = libvirt.VIR_CONNECT_LIST_STORAGE_POOLS_ACTIVE
        for pool in self._call("storage pools", lambda: self.conn.listAllStoragePools(active)):
            self._call(f"refresh pool {pool.name()}", partial(pool.refresh, 0))
        try:
            return self.conn.storageVolLookupByPath(path)
        except libvirt.libvirtError as exc:
            raise NotFound(
                "E_IMAGE_NOT_FOUND",
                f"host {self.name} has no file {path} in any of its storage pools",
                "copy it into a pool's directory on the host ('whimbrel host show "
                f"{self.name}' lists them) and give its full path there",
                str(exc),
            ) from exc

    def image(self, path: str) -> tuple[ImageInfo, bytes]:
        vol = self._volume(path)
        _kind, capacity, allocation = self._call(f"image {path}", vol.info)
        desc = ET.fromstring(self._call(f"image {path}", lambda: vol.XMLDesc(0)))
        fmt_el = desc.find("target/format")
        fmt = fmt_el.get("type", "raw") if fmt_el is not None else "raw"
        pool = self._call(f"pool of {path}", vol.storagePoolLookupByVolume).name()
        info = ImageInfo(path, pool, fmt, int(capacity), int(allocation))
        return info, self._head(vol, path)

    def _head(self, vol: libvirt.virStorageVol, path: str) -> bytes:
        """The file's first bytes, as stored (a qcow2's header, not its content)."""
        stream = self.conn.newStream(0)
        chunks: list[bytes] = []
        try:
            self._call(f"read {path}", lambda: vol.download(stream, 0, HEAD_BYTES, 0))
            while sum(map(len, chunks)) < HEAD_BYTES:
                got = stream.recv(HEAD_BYTES)
                if not isinstance(got, bytes) or not got:
                    break
                chunks.append(got)
            stream.finish()
        except libvirt.libvirtError:
            stream.abort()
            raise
        return b"".join(chunks)[:HEAD_BYTES]

    def _pool_for(self, pool: str, name: str) -> libvirt.virStoragePool:
        """``pool``, read again, where a new volume ``name`` is to go.
        Raises: NotFound (the pool), Conflict (a volume of that name is there)."""
        try:
            p = self.conn.storagePoolLookupByName(pool)
        except libvirt.libvirtError as exc:
            raise NotFound(
                "E_POOL_NOT_FOUND",
                f"host {self.name} has no storage pool {pool!r}",
                "run 'whimbrel host show' to see the pools, or define the pool on the host",
                str(exc),
            ) from exc
        self._call(f"refresh pool {pool}", lambda: p.refresh(0))
        try:
            p.storageVolLookupByName(name)
        except libvirt.libvirtError:
            return p
        raise Conflict(
            "E_VOLUME_EXISTS",
            f"pool {pool} on host {self.name} already holds {name}",
            "delete that image, or choose another VM name",
        )

    def clone_volume(self, pool: str, name: str, source: str, size_bytes: int, linked: bool) -> str:
        p = self._pool_for(pool, name)
        src = self._volume(source)
        _k, capacity, allocation = self._call(f"image {source}", src.info)
        size = max(size_bytes, int(capacity))
        # A full copy takes up to the image's virtual size once converted; an overlay little.
        needed = 16 * MIB if linked else max(int(allocation), int(capacity))
        free = int(self._call(f"pool {pool}", p.info)[3])
        if needed > free:
            raise InsufficientResources(
                "E_NO_SPACE",
                f"pool {pool} on host {self.name} has {free // MIB} MiB free; a copy of "
                f"{source} needs {needed // MIB} MiB",
                "free space in the pool, choose another pool, or use a linked clone",
            )
        if linked:
            fmt = ET.fromstring(self._call("image", lambda: src.XMLDesc(0))).find("target/format")
            backing = (source, fmt.get("type", "raw") if fmt is not None else "raw")
            xml = volume_xml(name, size, "qcow2", backing=backing)
            vol = self._create(source, lambda: p.createXML(xml, 0))
        else:
            xml = volume_xml(name, size, "qcow2")
            vol = self._create(source, lambda: p.createXMLFrom(xml, src, 0))
            if int(self._call(f"image {name}", vol.info)[1]) < size:
                self._call(f"resize {name}", lambda: vol.resize(size, 0))
        return str(vol.path())

    def _create(
        self, source: str, fn: Callable[[], libvirt.virStorageVol]
    ) -> libvirt.virStorageVol:
        try:
            return fn()
        except libvirt.libvirtError as exc:
            text = str(exc)
            if "corrupt" in text.lower() or "Could not open" in text or "qemu-img" in text:
                raise corrupt(source, text) from exc
            raise call_error(self.name, f"clone of {source}", exc) from exc

    def describe(self, name: str) -> DomainSpec:
        dom = self._lookup(name)
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE
        return parse_domain(self._call(f"definition of VM {name}", lambda: dom.XMLDesc(flags)))

    def set_cdrom(self, name: str, path: str) -> None:
        dom = self._lookup(name)
        desc = ET.fromstring(self._call(f"definition of VM {name}", lambda: dom.XMLDesc(0)))
        drive = desc.find("devices/disk[@device='cdrom']")
        target = drive.find("target") if drive is not None else None
        if target is None:
            raise WrongState(
                "E_NO_CDROM_DRIVE",
                f"VM {name} has no CD-ROM drive (it was created before VMs got one)",
                "create the VM again with --iso, or attach the ISO as a disk outside Whimbrel",
            )
        xml = cdrom_xml(path, target.get("dev", "hdc"), target.get("bus", "ide"))
        flags = libvirt.VIR_DOMAIN_AFFECT_CONFIG
        if self._call(f"state of VM {name}", dom.isActive):
            flags |= libvirt.VIR_DOMAIN_AFFECT_LIVE
        self._call(f"CD-ROM of VM {name}", lambda: dom.updateDeviceFlags(xml, flags))
