"""The storage heartbeat: the second liveness channel, on the cluster's shared storage.

Each host of a cluster runs ``whimbrel-heartbeat`` (:mod:`whimbrel.ha.hostd`), which
rewrites ``HEARTBEAT_DIR/<host>.json`` on the cluster's shared storage every second
with a growing sequence number, whether it can reach its peers, and which HA VMs it
stopped itself.  Anyone who sees that storage reads it: the manager, to tell a host
that only lost its management link (heartbeat alive) from one that is dead (both
silent).  Like sanlock's delta leases, liveness is judged by the sequence changing
as seen on the reader's own clock, never by comparing two machines' clocks.

The manager writes ``policy.json`` in the same directory: the cluster's detection
time, isolation response, members and HA VMs, which each host's daemon obeys.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from whimbrel.domain.host import DETECTION_S, IsolationResponse

HEARTBEAT_DIR = "heartbeat"  # under the cluster's first shared path
POLICY_FILE = "policy.json"
INTERVAL_S = 1.0


@dataclass(frozen=True)
class Policy:
    """What the manager asks of every host of one cluster."""

    cluster: str = ""
    detection_s: float = DETECTION_S
    isolation_response: str = IsolationResponse.LEAVE
    members: dict[str, str] = field(default_factory=dict)  # host -> management address
    ha_vms: tuple[str, ...] = ()

    @property
    def self_fence_s(self) -> float:
        """A host that cannot renew its heartbeat this long stops its VMs' writers:
        well before the manager (after ``detection_s``) may start them elsewhere."""
        return round(self.detection_s * 0.6, 1)

    @property
    def isolation_s(self) -> float:
        """How long a host must be cut from every peer before it takes itself for isolated."""
        return round(self.detection_s / 3, 1)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["ha_vms"] = list(self.ha_vms)
        d["self_fence_s"], d["isolation_s"] = self.self_fence_s, self.isolation_s
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Policy:
        return cls(
            cluster=str(d.get("cluster", "")),
            detection_s=float(d.get("detection_s", DETECTION_S)),
            isolation_response=str(d.get("isolation_response", IsolationResponse.LEAVE)),
            members={str(k): str(v) for k, v in dict(d.get("members", {})).items()},
            ha_vms=tuple(str(v) for v in d.get("ha_vms", ())),
        )


@dataclass(frozen=True)
class Record:
    """One heartbeat as its host wrote it."""

    host: str
    seq: int
    written_at: str  # the host's wall clock, for people; liveness never reads it
    interval_s: float = INTERVAL_S
    peers: dict[str, bool] = field(default_factory=dict)  # peer -> reachable
    isolated: bool = False
    isolated_since: str = ""
    # HA VMs the host stopped itself (isolation response): VM -> when, once gone
    stopped: dict[str, str] = field(default_factory=dict)
    # Writers killed because the heartbeat could not be renewed (self-fencing)
    self_fenced: dict[str, str] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        return cls(
            host=str(d["host"]),
            seq=int(d["seq"]),
            written_at=str(d.get("written_at", "")),
            interval_s=float(d.get("interval_s", INTERVAL_S)),
            peers={str(k): bool(v) for k, v in dict(d.get("peers", {})).items()},
            isolated=bool(d.get("isolated", False)),
            isolated_since=str(d.get("isolated_since", "")),
            stopped={str(k): str(v) for k, v in dict(d.get("stopped", {})).items()},
            self_fenced={str(k): str(v) for k, v in dict(d.get("self_fenced", {})).items()},
        )


def write_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as JSON so a reader sees the old or the new file, never half of one."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        os.write(fd, json.dumps(data, sort_keys=True).encode())
        os.fsync(fd)  # a heartbeat that only reached the page cache proves nothing
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read_record(directory: Path, host: str) -> Record | None:
    """The host's last heartbeat, or None when there is none (or it cannot be read)."""
    try:
        return Record.from_dict(json.loads((directory / f"{host}.json").read_text()))
    except (OSError, ValueError, KeyError, TypeError):
        return None


def read_policy(directory: Path) -> Policy | None:
    try:
        return Policy.from_dict(json.loads((directory / POLICY_FILE).read_text()))
    except (OSError, ValueError, TypeError):
        return None


def write_policy(directory: Path, policy: Policy) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    write_atomic(directory / POLICY_FILE, policy.to_dict())
