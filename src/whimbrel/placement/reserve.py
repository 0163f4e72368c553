"""Cluster reserve: can the cluster lose any ``k`` nodes and still run every HA VM?

VMM's highly available VMs ("HAVM placement and the overcommitted state"): with 8 nodes and a
reserve of 2 the cluster is over-committed when some 6 of them cannot hold the VMs; with only 5
nodes up, when some 3 cannot.  Only nodes that are up count, and only the HA VMs of the failed
nodes must find room (the others are not restarted).

Checking every set of ``k`` nodes by packing VMs is exact but slow at 64 nodes,
so three cheaper tests settle almost every case first:

1. a sufficient bound: a survivor with at least ``s`` MiB free (``s`` the
   largest HA VM) accepts any VM, so it absorbs at least ``free - s``; if even
   the worst ``k`` nodes by ``ha + (free - s)`` leave that much, every set fits;
2. a necessary bound: if the worst ``k`` nodes by ``ha + free`` need more than
   the others have free in total, the cluster is over-committed;
3. between the two, each set the first bound does not clear is packed
   (largest VM first, onto the survivor with the most free memory).
"""

from __future__ import annotations

import heapq
import itertools
from dataclasses import dataclass
from math import comb

from whimbrel.placement.load import NodeLoad, VmLoad, gib
from whimbrel.preflight.finding import Finding, Severity

# Sets packed one by one at most; past it the cluster counts as over-committed
# (not proven safe), which errs on the side of keeping the reserve.
PACK_LIMIT = 5000
ENUMERATE_LIMIT = 500_000


@dataclass(frozen=True)
class ReserveVerdict:
    reserve: int
    nodes_up: int
    overcommitted: bool
    reason: str
    failed: tuple[str, ...] = ()  # the nodes whose loss cannot be absorbed
    stranded: tuple[str, ...] = ()  # HA VMs that would find no room then
    method: str = "bound"
    sets_packed: int = 0

    def to_dict(self) -> dict[str, object]:
        return {
            "reserve": self.reserve,
            "nodes_up": self.nodes_up,
            "overcommitted": self.overcommitted,
            "reason": self.reason,
            "failed": list(self.failed),
            "stranded": list(self.stranded),
            "method": self.method,
            "sets_packed": self.sets_packed,
        }


def pack(vms: list[VmLoad], free: dict[str, int]) -> tuple[dict[str, str], list[VmLoad]]:
    """Place ``vms`` in the given order, each on the node with the most free memory.

    Returns where each VM went and the VMs that found no room.
    """
    heap = [(-f, n) for n, f in free.items()]
    heapq.heapify(heap)
    placed: dict[str, str] = {}
    left: list[VmLoad] = []
    for vm in vms:
        if not heap or vm.memory_mib > -heap[0][0]:
            left.append(vm)
            continue
        f, n = heap[0]
        heapq.heapreplace(heap, (f + vm.memory_mib, n))
        placed[vm.name] = n
    return placed, left


def _try(up: list[NodeLoad], failed: set[str]) -> list[VmLoad]:
    vms = sorted(
        (v for n in up if n.name in failed for v in n.ha_vms()), key=lambda v: -v.memory_mib
    )
    _, left = pack(vms, {n.name: max(0, n.free_mib) for n in up if n.name not in failed})
    return left


def _over(
    k: int, up: list[NodeLoad], failed: set[str], left: list[VmLoad], how: str, packed: int
) -> ReserveVerdict:
    need = sum(n.ha_mib for n in up if n.name in failed)
    have = sum(max(0, n.free_mib) for n in up if n.name not in failed)
    names = ", ".join(sorted(failed))
    why = (
        f"if {names} failed, their HA VMs would need {gib(need)}; the other "
        f"{len(up) - len(failed)} node(s) have {gib(have)} free"
    )
    if left and need <= have:
        why += f", but not in one piece for {', '.join(v.name for v in left[:5])}"
    return ReserveVerdict(
        k, len(up), True, why, tuple(sorted(failed)), tuple(v.name for v in left), how, packed
    )


def overcommit(nodes: list[NodeLoad], reserve: int) -> ReserveVerdict:
    k = reserve
    up = [n for n in nodes if n.up and not n.maintenance]
    ha_vms = [v for n in up for v in n.ha_vms()]
    if k <= 0 or not ha_vms:
        return ReserveVerdict(k, len(up), False, "no HA VM to protect" if k > 0 else "reserve 0")
    if len(up) <= k:
        return ReserveVerdict(
            k,
            len(up),
            True,
            f"only {len(up)} node(s) up for a reserve of {k}: none would be left for the HA VMs",
            tuple(n.name for n in up),
            tuple(v.name for v in ha_vms),
            "count",
        )
    biggest = max(v.memory_mib for v in ha_vms)
    absorb = {n.name: max(0, n.free_mib - biggest) for n in up}
    total_absorb = sum(absorb.values())
    worst = heapq.nlargest(k, up, key=lambda n: n.ha_mib + absorb[n.name])
    if sum(n.ha_mib + absorb[n.name] for n in worst) <= total_absorb:
        return ReserveVerdict(k, len(up), False, f"any {k} node(s) of {len(up)} can fail")
    free_total = sum(max(0, n.free_mib) for n in up)
    worst = heapq.nlargest(k, up, key=lambda n: n.ha_mib + max(0, n.free_mib))
    failed = {n.name for n in worst}
    if sum(n.ha_mib + max(0, n.free_mib) for n in worst) > free_total:
        return _over(k, up, failed, _try(up, failed), "capacity", 1)
    if comb(len(up), k) > ENUMERATE_LIMIT:
        return _over(k, up, failed, _try(up, failed), "too many sets to prove", 1)
    key = [n.ha_mib + absorb[n.name] for n in up]
    packed = 0
    for idx in itertools.combinations(range(len(up)), k):
        if sum(key[i] for i in idx) <= total_absorb:
            continue
        packed += 1
        failed = {up[i].name for i in idx}
        left = _try(up, failed)
        if left or packed >= PACK_LIMIT:
            return _over(k, up, failed, left, "packing" if left else "not proven", packed)
    return ReserveVerdict(
        k,
        len(up),
        False,
        f"any {k} node(s) of {len(up)} can fail",
        method="packing",
        sets_packed=packed,
    )


def overcommitted(cluster: str, reserve: int, vm: str, verdict: ReserveVerdict) -> Finding:
    """E_CLUSTER_OVERCOMMITTED, the one way it is said: a VM would leave ``cluster``
    unable to absorb ``reserve`` node failures."""
    return Finding(
        "E_CLUSTER_OVERCOMMITTED",
        Severity.ERROR,
        f"cluster {cluster}",
        f"cluster {cluster} would be over-committed with VM {vm} (reserve {reserve}): "
        f"{verdict.reason}",
        f"add memory or nodes to cluster {cluster}, lower its reserve ('whimbrel cluster set "
        f"{cluster} --reserve K'), choose another cluster, or override with --allow-overcommit",
    )
