"""Host ratings: 0 to 5 stars for a VM on each host, with the reasons shown.

SCVMM's host ratings (Get-SCVMHostRating): a host that cannot take the VM
gets 0 and the reason why; the others are scored by the memory and CPU left
after placing it, towards spreading load (``balance``) or packing it
(``consolidate``).  VMM's highly available VMs: HA VMs go only to clustered hosts, a host in
maintenance is left out of the ratings, and a cluster that placing the VM
would over-commit is refused unless the administrator overrides it.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum

from whimbrel.placement.load import NodeLoad, VmLoad, gib, with_vm
from whimbrel.placement.reserve import ReserveVerdict, overcommit, overcommitted

CPU_OVERCOMMIT = 4  # vCPUs per host CPU before a host counts as CPU-full
MEMORY_WEIGHT = 0.7


class Goal(StrEnum):
    BALANCE = "balance"
    CONSOLIDATE = "consolidate"


@dataclass(frozen=True)
class Needs:
    """What the VM asks of a host, beyond memory and CPU."""

    networks: tuple[str, ...] = ()
    cluster: str | None = None  # HA VMs: the cluster whose nodes may take it
    reachable: frozenset[str] | None = None  # hosts that reach every disk; None: copied
    source: str | None = None  # the host it runs on now (a move leaves it out)


@dataclass(frozen=True)
class Site:
    """A host as placement sees it: its load, cluster and networks."""

    load: NodeLoad
    cluster: str | None = None
    networks: frozenset[str] = frozenset()


@dataclass(frozen=True)
class Rating:
    host: str
    stars: float
    reasons: tuple[str, ...]
    blocked_by: tuple[str, ...] = ()  # error codes; empty when the host can take the VM
    overcommit: ReserveVerdict | None = None

    @property
    def eligible(self) -> bool:
        return not self.blocked_by

    def to_dict(self) -> dict[str, object]:
        return {
            "host": self.host,
            "stars": self.stars,
            "eligible": self.eligible,
            "blocked_by": list(self.blocked_by),
            "reasons": list(self.reasons),
            "overcommit": self.overcommit.to_dict() if self.overcommit else None,
        }


@dataclass
class _Check:
    codes: list[str] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)

    def block(self, code: str, why: str) -> None:
        self.codes.append(code)
        self.reasons.append(why)


def rate(
    vm: VmLoad,
    needs: Needs,
    sites: list[Site],
    reserves: dict[str, int],
    goal: Goal = Goal.BALANCE,
    allow_overcommit: bool = False,
) -> list[Rating]:
    """Every host rated for ``vm``, best first.  ``reserves``: cluster -> k."""
    # A VM that runs somewhere already is counted where it goes, not twice.
    sites = [
        replace(s, load=replace(s.load, vms=[v for v in s.load.vms if v.name != vm.name]))
        for s in sites
    ]
    clusters: dict[str, list[NodeLoad]] = {}
    for s in sites:
        if s.cluster:
            clusters.setdefault(s.cluster, []).append(s.load)
    out = [_rate(vm, needs, s, clusters, reserves, goal, allow_overcommit) for s in sites]
    return sorted(out, key=lambda r: (-r.stars, r.host))


def _rate(
    vm: VmLoad,
    needs: Needs,
    site: Site,
    clusters: dict[str, list[NodeLoad]],
    reserves: dict[str, int],
    goal: Goal,
    allow_overcommit: bool,
) -> Rating:
    n = site.load
    c = _Check()
    if n.name == needs.source:
        c.block("E_SAME_HOST", "the VM runs here now")
    if n.maintenance:
        c.block("E_DEST_IN_MAINTENANCE", "in maintenance mode: takes no VMs")
    elif not n.up:
        c.block("E_HOST_UNREACHABLE", "not connected")
    if vm.ha and site.cluster is None:
        c.block("E_HA_NOT_CLUSTERED", "not in a cluster: HA VMs run only on clustered hosts")
    elif vm.ha and needs.cluster and site.cluster != needs.cluster:
        c.block("E_HA_OTHER_CLUSTER", f"in cluster {site.cluster}, not {needs.cluster}")
    after = n.free_mib - vm.memory_mib
    if after < 0:
        c.block("E_NO_MEMORY", f"{gib(n.free_mib)} free, the VM needs {gib(vm.memory_mib)}")
    missing = [x for x in needs.networks if x.casefold() not in site.networks]
    if missing:
        c.block("E_NETWORK_MISSING", f"no network {', '.join(missing)}")
    if needs.reachable is not None and n.name not in needs.reachable:
        c.block("E_DISK_NOT_SHARED", "cannot reach the VM's disks (copy them with the move)")
    verdict = None
    if vm.ha and site.cluster and not c.codes:
        trial = with_vm(clusters[site.cluster], n.name, vm)
        verdict = overcommit(trial, reserves.get(site.cluster, 1))
        if verdict.overcommitted and not allow_overcommit:
            f = overcommitted(site.cluster, reserves.get(site.cluster, 1), vm.name, verdict)
            c.block(f.code, f.cause)
        elif verdict.overcommitted:
            c.reasons.append(f"warning: cluster {site.cluster} over-committed (overridden)")
    if c.codes:
        return Rating(n.name, 0.0, tuple(c.reasons), tuple(c.codes), verdict)
    mem = after / max(1, n.memory_mib)
    cpu = 1 - min(1.0, (n.vcpus + vm.vcpus) / max(1, n.cpus * CPU_OVERCOMMIT))
    score = MEMORY_WEIGHT * mem + (1 - MEMORY_WEIGHT) * cpu
    if goal == Goal.CONSOLIDATE:
        score = 1 - score
    stars = max(0.1, round(5 * score, 1))
    reasons = [
        f"memory after placing: {gib(after)} free of {gib(n.memory_mib)} ({mem:.0%})",
        f"vCPUs: {n.vcpus + vm.vcpus} on {n.cpus} CPUs ({CPU_OVERCOMMIT}:1 counts as full)",
        *c.reasons,
    ]
    if verdict is not None and not verdict.overcommitted:
        reasons.append(f"cluster {site.cluster} keeps its reserve of {verdict.reserve}")
    return Rating(n.name, stars, tuple(reasons), (), verdict)
