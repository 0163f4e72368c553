"""Disk images and ISO files a VM is made from: what the host reports of them, and
whether their first bytes are what they claim to be.

The checks read the headers only (the host sends ``HEAD_BYTES``), so that a corrupt
image or a file that is no ISO is refused before anything is created from it."""

from __future__ import annotations

import struct
from dataclasses import dataclass

from whimbrel.errors import InvalidInput

HEAD_BYTES = 0x8800  # the qcow2 header, and ISO 9660's primary volume descriptor (sector 16)
ISO_MAGIC_AT = 0x8001
QCOW2_MAGIC = b"QFI\xfb"


@dataclass(frozen=True)
class ImageInfo:
    """A file in a storage pool of a host."""

    path: str
    pool: str
    fmt: str  # the host's own probe: qcow2, raw, iso
    size_bytes: int  # virtual size: what the guest sees
    allocation: int  # what it takes on the pool


def corrupt(path: str, why: str) -> InvalidInput:
    return InvalidInput(
        "E_IMAGE_CORRUPT",
        f"image {path} is not a usable disk image: {why}",
        "check it with 'qemu-img check' on the host, or give another image; nothing was created",
    )


def check_disk_image(info: ImageInfo, head: bytes) -> str:
    """The image's format (qcow2 or raw) once its header holds together.

    A qcow2 header is read as QEMU reads it (version, cluster size, size); an image
    whose first bytes say qcow2 but whose header is damaged is refused, not copied."""
    if head.startswith(QCOW2_MAGIC):
        if len(head) < 72:
            raise corrupt(info.path, "the qcow2 header is cut short")
        version, _bo, _bs, cluster_bits, size = struct.unpack(">IQIIQ", head[4:32])
        if version not in (2, 3):
            raise corrupt(info.path, f"qcow2 version {version} (QEMU knows 2 and 3)")
        if not 9 <= cluster_bits <= 21:
            raise corrupt(info.path, f"qcow2 cluster size 2^{cluster_bits}")
        if size == 0:
            raise corrupt(info.path, "qcow2 virtual size 0")
        return "qcow2"
    if info.fmt == "qcow2":
        raise corrupt(info.path, "the host reads it as qcow2 but it has no qcow2 header")
    if is_iso(head):
        raise InvalidInput(
            "E_IMAGE_IS_ISO",
            f"{info.path} is an ISO 9660 image, not a disk image",
            "attach it as a CD-ROM with --iso (and --boot cdrom to start from it)",
        )
    if info.size_bytes == 0:
        raise corrupt(info.path, "it is empty")
    return "raw"


def is_iso(head: bytes) -> bool:
    return head[ISO_MAGIC_AT : ISO_MAGIC_AT + 5] == b"CD001"


def check_iso(info: ImageInfo, head: bytes) -> None:
    if not is_iso(head):
        raise InvalidInput(
            "E_ISO_INVALID",
            f"{info.path} is not an ISO 9660 image (no 'CD001' volume descriptor at 32 KiB)",
            "give an .iso file (a CD or DVD image); a disk image goes with --image",
        )
