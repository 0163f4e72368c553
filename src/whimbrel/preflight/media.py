"""What a VM reads besides its own disks, checked on the destination of a move: the ISO
in its CD-ROM and the backing image of a linked clone.  QEMU opens both on the
destination at the switch-over; a file it cannot open there fails the move at its end.

A path on storage both hosts share is reachable; any other is looked up in the
destination's pools (a copy at the same path will do)."""

from __future__ import annotations

from whimbrel.errors import NotFound, WhimbrelError
from whimbrel.preflight.finding import Finding, HostDrivers, Severity
from whimbrel.store.models import Host, Vm
from whimbrel.store.repo import is_shared_path

E = Severity.ERROR


def reachable(path: str, src: Host, dst: Host, conns: HostDrivers) -> bool | None:
    """Whether ``dst`` has ``path``; None when it cannot be asked (other checks say why)."""
    if is_shared_path(src, path) and is_shared_path(dst, path):
        return True
    try:
        conns.for_host(dst.name).image(path)
    except NotFound:
        return False
    except WhimbrelError:
        return None
    return True


def check_media(vm: Vm, src: Host, dst: Host, conns: HostDrivers) -> list[Finding]:
    if src.id == dst.id:
        return []
    out = []
    subject = f"VM {vm.name}"
    if vm.cdrom and reachable(vm.cdrom, src, dst, conns) is False:
        out.append(
            Finding(
                "E_ISO_MISSING",
                E,
                subject,
                f"the ISO in VM {vm.name}'s CD-ROM ({vm.cdrom}) is not on host {dst.name}, "
                "which could not open it",
                f"eject it ('whimbrel vm eject {vm.name}'), or copy it to the same path on "
                f"{dst.name} or to the cluster's shared storage",
            )
        )
    for d in vm.disks:
        if d.backing and reachable(d.backing, src, dst, conns) is False:
            out.append(
                Finding(
                    "E_BACKING_MISSING",
                    E,
                    subject,
                    f"disk {d.target} is a linked clone of {d.backing}, which host {dst.name} "
                    "does not have",
                    "keep templates on the cluster's shared storage, or make the VM from a "
                    "full clone ('--clone full')",
                )
            )
    return out
