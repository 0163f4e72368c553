"""The lab's shape: which hosts, in which clusters, on which addresses and paths."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from whimbrel.errors import InvalidInput

# Paths as the hosts see them: identical on every host, so a disk path means the
# same thing wherever a VM runs.
SRV = "/srv/whimbrel"
GUEST_DIR = f"{SRV}/guest"
LOCAL_DIR = f"{SRV}/local"
PKI_DIR = f"{SRV}/pki"
LOCAL_POOL = "local"
VM_NETWORK = "vm-net"


def shared_dir(cluster: str) -> str:
    return f"{SRV}/shared/{cluster}"


def shared_pool(cluster: str) -> str:
    return f"csv-{cluster}"


@dataclass(frozen=True)
class LabHost:
    name: str
    index: int
    cluster: str
    lab: LabSpec

    @property
    def netns(self) -> str:
        return f"wb{self.lab.name}-{self.name}"

    @property
    def mgmt_ip(self) -> str:
        return f"10.{self.lab.octet}.0.{self.index}"

    @property
    def migration_ip(self) -> str:
        return f"10.{self.lab.octet}.1.{self.index}"

    @property
    def uri(self) -> str:
        return f"qemu+tls://{self.mgmt_ip}/system"

    @property
    def dir(self) -> Path:
        return self.lab.root / "hosts" / self.name

    @property
    def socket(self) -> Path:
        """libvirtd's unix socket seen from the machine: the lab's own back door."""
        return self.dir / "run/libvirt/libvirt-sock"

    @property
    def local_uri(self) -> str:
        return f"qemu+unix:///system?socket={self.socket}"

    @property
    def host_uuid(self) -> str:
        return f"7ab{self.lab.octet:05d}-1ab0-4000-8000-{self.index:012d}"

    @property
    def migration_settings(self) -> dict[str, object]:
        """How the lab registers the host: its two networks, migrations on the dedicated one."""
        return {
            "addresses": [f"{self.mgmt_ip}/24", f"{self.migration_ip}/24"],
            "networks": [f"10.{self.lab.octet}.1.0/24"],
            "peer_pki": PKI_DIR,
        }

    def veth(self, net: str) -> str:
        return f"wb{self.lab.name[:3]}{self.index}{net}"


@dataclass(frozen=True)
class LabSpec:
    """``name`` keeps two labs apart (the demo's and the tests'): names, bridges, subnets."""

    name: str = "lab"
    root: Path = Path("/var/tmp/whimbrel-lab")
    octet: int = 77
    clusters: dict[str, tuple[str, ...]] = field(
        default_factory=lambda: {"alpha": ("h1", "h2"), "beta": ("h3", "h4")}
    )

    @property
    def hosts(self) -> list[LabHost]:
        out = []
        i = 0
        for cluster, names in self.clusters.items():
            for n in names:
                i += 1
                out.append(LabHost(n, i, cluster, self))
        return out

    def host(self, name: str) -> LabHost:
        for h in self.hosts:
            if h.name == name:
                return h
        raise InvalidInput(
            "E_LAB_HOST_UNKNOWN",
            f"the lab has no host {name!r}",
            "use one of " + ", ".join(h.name for h in self.hosts),
        )

    def bridge(self, net: str) -> str:
        return f"wb{self.name[:6]}-{net}"

    def gateway(self, net: int) -> str:
        return f"10.{self.octet}.{net}.254"

    @property
    def guest_dir(self) -> Path:
        return self.root / "guest"

    def cluster_dir(self, cluster: str) -> Path:
        return self.root / "clusters" / cluster


def from_env() -> LabSpec:
    """The demo lab, or another one named by WHIMBREL_LAB_NAME/_DIR/_OCTET (tests)."""
    name = os.environ.get("WHIMBREL_LAB_NAME", "lab")
    root = Path(os.environ.get("WHIMBREL_LAB_DIR", "/var/tmp/whimbrel-lab"))
    octet = int(os.environ.get("WHIMBREL_LAB_OCTET", "77"))
    return LabSpec(name=name, root=root, octet=octet)
