"""Can this machine run guests with hardware KVM, or only under TCG?

On some cloud machines /dev/kvm is PVM ("pagetable-based virtual machine",
module kvm_pvm): the KVM API works, but a stock Linux guest kernel dies with
an emulation failure.  There the lab hides /dev/kvm from its hosts, so their
libvirt offers only the 'qemu' (TCG) domain type and the manager picks it.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Accel:
    kvm: bool
    reason: str


def detect(dev: Path = Path("/dev/kvm"), sysmod: Path = Path("/sys/module")) -> Accel:
    if not dev.exists():
        return Accel(False, "/dev/kvm does not exist: guests run under TCG (software emulation)")
    if (sysmod / "kvm_pvm").exists():
        return Accel(
            False,
            "/dev/kvm is PVM (kvm_pvm), which cannot boot stock Linux guests: "
            "lab guests run under TCG (software emulation)",
        )
    if not os.access(dev, os.R_OK | os.W_OK):
        return Accel(False, "/dev/kvm is not accessible: guests run under TCG")
    return Accel(True, "hardware KVM")
