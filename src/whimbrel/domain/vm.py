"""Virtual machines: the spec Whimbrel defines, and what a host reports back."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import StrEnum

from whimbrel.errors import InvalidInput

NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,62}")
HEARTBEAT_CHANNEL = "org.whimbrel.heartbeat.0"


class VmState(StrEnum):
    """Power state as Whimbrel shows it (libvirt's states folded to what admins act on)."""

    RUNNING = "running"
    PAUSED = "paused"
    SAVED = "saved"
    STOPPED = "stopped"
    CRASHED = "crashed"
    MISSING = "missing"  # the host no longer knows the domain
    UNKNOWN = "unknown"  # the host cannot be reached


# States in which a domain is a running copy of its VM (it holds its disks).
ACTIVE = frozenset({VmState.RUNNING, VmState.PAUSED})


def check_name(kind: str, name: str) -> str:
    """Names become libvirt domain and file names: keep them portable."""
    if not NAME_RE.fullmatch(name):  # match() would let a trailing newline through
        raise InvalidInput(
            f"E_INVALID_{kind.upper()}_NAME",
            f"{kind} name {name!r} is not allowed",
            "use 1-63 letters, digits, '.', '_' or '-', starting with a letter or digit",
        )
    return name


@dataclass(frozen=True)
class DiskSpec:
    """A disk image attached to a VM.  ``path`` is the file on the host."""

    path: str
    target: str = "vda"
    fmt: str = "qcow2"
    size_bytes: int = 0
    pool: str = ""
    volume: str = ""
    backing: str = ""  # a linked clone's backing image


@dataclass(frozen=True)
class BootSpec:
    """Direct kernel boot (the lab guest); empty ``kernel`` boots from the first disk."""

    kernel: str = ""
    initrd: str = ""
    cmdline: str = ""


@dataclass(frozen=True)
class DomainSpec:
    name: str
    uuid: str
    memory_mib: int
    vcpus: int
    virt_type: str
    machine: str
    boot: BootSpec = field(default_factory=BootSpec)
    disks: tuple[DiskSpec, ...] = ()
    networks: tuple[str, ...] = ()
    console_log: str = ""
    cdrom: str = ""  # an ISO image on the host in the CD-ROM drive; "" empty
    boot_cdrom: bool = False


@dataclass(frozen=True)
class DomainInfo:
    name: str
    uuid: str
    state: VmState
    memory_mib: int
    vcpus: int
    has_saved_state: bool = False


@dataclass(frozen=True)
class DomainEvent:
    """A lifecycle change the host reported on its own (started, stopped, crashed, ...)."""

    name: str
    kind: str
    at: float


@dataclass(frozen=True)
class Heartbeat:
    """One line the lab guest's workload prints on its heartbeat channel.

    ``bad`` counts memory pages whose content went back in time (lost in a
    migration); ``disk_seq`` is the last sequence number written to its disk.
    """

    counter: int
    uptime_s: float
    dirtied_mib: int
    passes: int
    bad: int
    disk_seq: int
    writer: str

    @classmethod
    def parse(cls, line: str) -> Heartbeat | None:
        parts = line.split()
        if len(parts) < 2 or parts[0] != "HB" or not parts[1].isdigit():
            return None
        kv = dict(p.split("=", 1) for p in parts[2:] if "=" in p)
        try:
            return cls(
                counter=int(parts[1]),
                uptime_s=float(kv.get("up", "0")),
                dirtied_mib=int(kv.get("dirtied", "0")),
                passes=int(kv.get("pass", "0")),
                bad=int(kv.get("bad", "0")),
                disk_seq=int(kv.get("disk", "-1")),
                writer=kv.get("writer", ""),
            )
        except ValueError:
            return None
