"""What a driver is where the manager itself is the cluster (KVM, the fake fleet).

HA roles, node pauses and migration settings live in Whimbrel's store and are
enforced by the manager; the hypervisor moves and saves VMs as it is told, step
by step.
"""

from __future__ import annotations


class ManagerIsTheCluster:
    creates_copy_targets = False
    has_postcopy = True
