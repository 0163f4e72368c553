"""The driver interface: one connection to one hypervisor host.

Small on purpose (Nova's 111-method driver is the counter-example): typed
dataclasses in and out, no opaque dicts, every error one of
:mod:`whimbrel.errors`.  The orchestrator owns control flow; a driver never
calls back into the manager.
"""

from __future__ import annotations

from typing import Protocol

from whimbrel.domain.host import HostInventory
from whimbrel.domain.vm import DomainEvent, DomainInfo, DomainSpec, Heartbeat


class HostDriver(Protocol):
    uri: str

    def inventory(self) -> HostInventory:
        """CPU, memory, machine types, virt types, networks and storage pools.

        Raises: HostUnreachable, HypervisorError.
        """
        ...

    def free_memory_mib(self) -> int:
        """Memory a new guest can still get on this host."""
        ...

    def list_domains(self) -> list[DomainInfo]:
        """Every domain the host knows, running or defined."""
        ...

    def domain(self, name: str) -> DomainInfo:
        """Raises: NotFound (E_DOMAIN_NOT_FOUND) when the host does not know it."""
        ...

    def create_volume(self, pool: str, name: str, size_bytes: int, fmt: str) -> str:
        """Create an empty disk image in ``pool``; return its path on the host.

        Raises: NotFound (pool), Conflict (volume exists), InsufficientResources.
        """
        ...

    def delete_volume(self, path: str) -> None:
        """Delete a disk image by path; a missing one is not an error."""
        ...

    def define(self, spec: DomainSpec) -> None:
        """Define (persist, not start) a domain.  Raises: Conflict, HypervisorError."""
        ...

    def undefine(self, name: str) -> None:
        """Forget a stopped domain and its saved state; a missing one is not an error."""
        ...

    def start(self, name: str) -> None:
        """Start, resuming from saved state when there is one.

        Raises: LockConflict (a disk lease is held elsewhere),
        InsufficientResources, HypervisorError.
        """
        ...

    def shutdown(self, name: str, timeout_s: float) -> None:
        """Ask the guest to power off; wait for it.  Raises: WrongState on timeout."""
        ...

    def power_off(self, name: str) -> None:
        """Stop at once, like pulling the plug; stopped already is not an error."""
        ...

    def save(self, name: str) -> None:
        """Save memory and device state on the host and stop (Hyper-V's Save-VM)."""
        ...

    def discard_saved(self, name: str) -> None:
        """Drop saved state so that the next start boots afresh."""
        ...

    def heartbeat(self, name: str, timeout_s: float = 1.5) -> Heartbeat | None:
        """The newest line of the guest's heartbeat channel, or None if it is silent."""
        ...

    def events(self) -> list[DomainEvent]:
        """Lifecycle events the host pushed since the last call (each given once)."""
        ...

    def close(self) -> None: ...
