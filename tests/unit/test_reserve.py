"""The cluster reserve (N-k) on VMM's example, and against brute force."""

from __future__ import annotations

import itertools
import random

from whimbrel.placement.load import NodeLoad, VmLoad
from whimbrel.placement.reserve import _try, overcommit

GIB = 1024


def cluster(nodes: int, vms_per_node: int, vm_gib: int = 8, node_gib: int = 64) -> list[NodeLoad]:
    return [
        NodeLoad(
            f"n{i}",
            node_gib * GIB,
            16,
            vms=[VmLoad(f"n{i}-vm{j}", vm_gib * GIB, 2, ha=True) for j in range(vms_per_node)],
        )
        for i in range(1, nodes + 1)
    ]


def test_vmm_eight_nodes_reserve_two() -> None:
    # 8 nodes of 64 GiB, six 8-GiB HA VMs each: any 2 can fail, exactly.
    nodes = cluster(8, 6)
    v = overcommit(nodes, 2)
    assert not v.overcommitted, v
    assert v.nodes_up == 8
    # One VM more and some pair of nodes cannot be absorbed by the other 6.
    nodes[0].vms.append(VmLoad("extra", 8 * GIB, ha=True))
    v = overcommit(nodes, 2)
    assert v.overcommitted and "n1" in v.failed and len(v.failed) == 2
    assert "the other 6 node(s)" in v.reason


def test_vmm_five_nodes_up_reserve_two() -> None:
    # The same cluster with three nodes down: 3 (5-2) survivors must hold it.
    nodes = cluster(8, 6)
    for n in nodes[5:]:
        n.up = False
    v = overcommit(nodes, 2)
    assert v.overcommitted and v.nodes_up == 5
    assert not overcommit(nodes, 1).overcommitted  # one lost: 48 GiB into 4 x 16 GiB
    assert not overcommit(cluster(5, 2), 2).overcommitted


def test_memory_in_pieces_does_not_hold_a_big_vm() -> None:
    nodes = [
        NodeLoad("a", 32 * GIB, vms=[VmLoad("big", 12 * GIB, ha=True)]),
        NodeLoad("b", 32 * GIB, vms=[VmLoad("b1", 24 * GIB)]),
        NodeLoad("c", 32 * GIB, vms=[VmLoad("c1", 24 * GIB)]),
    ]
    v = overcommit(nodes, 1)
    assert v.overcommitted and v.failed == ("a",) and v.stranded == ("big",)
    assert "not in one piece" in v.reason


def test_non_ha_vms_take_room_but_need_none() -> None:
    nodes = [
        NodeLoad("a", 16 * GIB, vms=[VmLoad("plain", 14 * GIB)]),
        NodeLoad("b", 16 * GIB, vms=[VmLoad("ha", 2 * GIB, ha=True)]),
    ]
    assert not overcommit(nodes, 1).overcommitted  # 'plain' is not restarted
    nodes[0].vms[0] = VmLoad("plain", 15 * GIB)
    assert overcommit(nodes, 1).overcommitted  # a has 1 GiB left for 'ha'


def test_no_node_left_and_edge_reserves() -> None:
    nodes = cluster(2, 1)
    assert overcommit(nodes, 2).overcommitted
    assert not overcommit(nodes, 0).overcommitted
    assert not overcommit([NodeLoad("a", GIB)], 1).overcommitted  # no HA VM


def brute(nodes: list[NodeLoad], k: int) -> bool:
    up = [n for n in nodes if n.up]
    if not any(n.ha_mib for n in up):
        return False
    if len(up) <= k:
        return True
    return any(_try(up, {n.name for n in s}) for s in itertools.combinations(up, k))


def test_bounds_agree_with_packing_every_set() -> None:
    rng = random.Random(7)
    for _ in range(400):
        nodes = []
        for i in range(rng.randint(2, 7)):
            cap = rng.choice([16, 32, 64]) * GIB
            vms, used = [], 0
            for j in range(rng.randint(0, 6)):
                mem = rng.choice([1, 2, 4, 8, 12]) * GIB
                if used + mem > cap:
                    break
                used += mem
                vms.append(VmLoad(f"v{i}-{j}", mem, ha=rng.random() < 0.7))
            nodes.append(NodeLoad(f"n{i}", cap, vms=vms, up=rng.random() < 0.9))
        k = rng.randint(1, 3)
        assert overcommit(nodes, k).overcommitted == brute(nodes, k), (nodes, k)
