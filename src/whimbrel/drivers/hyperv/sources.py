"""VM sources on Hyper-V hosts: not made through Whimbrel yet, and said so.

Images, ISOs and templates are KVM features in this version.  On Hyper-V the same
work is ``New-VM -VHDPath`` (an existing disk), ``Set-VMDvdDrive -Path`` (an ISO)
and ``New-VHD -ParentPath`` (a differencing disk on a template), which a later
version runs through these three methods."""

from __future__ import annotations

from whimbrel.domain.image import ImageInfo
from whimbrel.domain.vm import DomainSpec
from whimbrel.errors import HypervisorError


def _unsupported(what: str, cmdlet: str) -> HypervisorError:
    return HypervisorError(
        "E_HYPERV_UNSUPPORTED",
        f"{what} on a Hyper-V host is not done by Whimbrel in this version",
        f"create the VM with blank disks here, or on a KVM host; on the host itself {cmdlet} "
        "does it",
    )


class NoImageSources:
    def image(self, path: str) -> tuple[ImageInfo, bytes]:
        raise _unsupported("a VM from a disk image or an ISO", "New-VM -VHDPath")

    def clone_volume(self, pool: str, name: str, source: str, size_bytes: int, linked: bool) -> str:
        raise _unsupported("a clone of an image or template", "New-VHD -ParentPath")

    def describe(self, name: str) -> DomainSpec:
        raise _unsupported("importing an existing VM", "Get-VM (VMM: refresh the host)")

    def set_cdrom(self, name: str, path: str) -> None:
        raise _unsupported("changing a VM's DVD drive", "Set-VMDvdDrive -Path")
