"""A flow turns one op into a job: its subject, its locks and its steps.

``validate`` runs when the op is submitted, reads only, and raises the first
user error so that bad input changes nothing.  ``steps`` must be rebuildable
from the op alone: after a manager restart the runner rebuilds them to undo
an interrupted job.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any, ClassVar

from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.jobs.step import Step
from whimbrel.ops import Op
from whimbrel.store.repo import vms_locked


class Flow(ABC):
    op_type: ClassVar[type[Op]]
    # A parent (a drain, a failover) mostly waits for child jobs: it takes no worker,
    # so that its children always find one.
    waits_for_children: ClassVar[bool] = False
    # A job on a VM with cleanup left by an earlier job finishes it first, or is
    # refused; deleting the VM need not wait (the cleanup does not need the VM).
    finishes_cleanup_first: ClassVar[bool] = True

    def subject(self, op: Any) -> str:
        return str(getattr(op, "name", ""))

    def locks(self, op: Any) -> list[str]:
        """Names of what the job must hold alone (``vm:NAME``, ``host:NAME``)."""
        return []

    def vms(self, op: Any) -> list[str]:
        """The VMs the job works on (known before validation): its ``vm:`` locks."""
        return vms_locked(self.locks(op))

    def prepare(self, op: Any) -> Any:
        """Fill in what the user left out (a new UUID, say) before the op is stored."""
        return op

    def validate(self, op: Any, session: Session, conns: ConnectionPool) -> None:  # noqa: B027
        """Raise a :class:`whimbrel.errors.WhimbrelError` for input that must not run."""

    def bind(self, op: Any, session: Session) -> Any:
        """After validation: record in the op what the store knows now (a VM's host)."""
        return op

    @abstractmethod
    def steps(self, op: Any) -> list[Step]: ...


class FlowRegistry:
    def __init__(self, flows: list[Flow]):
        self._by_kind = {f.op_type.kind: f for f in flows}

    def for_kind(self, kind: str) -> Flow:
        return self._by_kind[kind]

    def kinds(self) -> list[str]:
        return sorted(self._by_kind)
