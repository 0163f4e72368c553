"""Roles and what each one may do, decided on the op a request submits.

Like SCVMM's user roles: an administrator does everything; an operator moves, starts,
stops, saves, drains and creates VMs but adds no host, sets no fencing, ignores no
finding and forces no delete; a reader only reads.  A grant holds on the whole fleet
or on one cluster; an op needs the role on every cluster it touches, and an op that
touches something outside any cluster (a host of none, the fleet's settings) needs it
on the fleet.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from whimbrel.errors import Forbidden, InvalidInput
from whimbrel.ops import Op, OpVmDelete, OpVmMigrate

FLEET = ""  # the cluster of a fleet-wide grant


class Role(StrEnum):
    READ_ONLY = "read-only"
    OPERATOR = "operator"
    ADMINISTRATOR = "administrator"


_RANK = {Role.READ_ONLY: 0, Role.OPERATOR: 1, Role.ADMINISTRATOR: 2}

# What an operator may submit; every other op needs an administrator.
OPERATOR_OPS = frozenset(
    {
        "host.refresh",
        "host.maintenance-start",
        "host.maintenance-stop",
        "vm.create",
        "vm.start",
        "vm.stop",
        "vm.save",
        "vm.restore",
        "vm.delete",
        "vm.migrate",
        "vm.ha",
        "vm.repair",
        "vm.cdrom",
        "vm.import",
        "job.cancel",
    }
)


def role(name: str) -> Role:
    try:
        return Role(name)
    except ValueError:
        raise InvalidInput(
            "E_INVALID_ROLE",
            f"there is no role {name!r}",
            "use one of " + ", ".join(r.value for r in Role),
        ) from None


@dataclass(frozen=True)
class Principal:
    """The user a request acts for, with their grants as (role, cluster) pairs."""

    user: str
    token_id: str
    grants: tuple[tuple[str, str], ...]
    expires: float | None = None  # the token's end (epoch seconds); None: never

    def rank_on(self, cluster: str) -> int:
        """The highest role that holds on ``cluster`` (FLEET: fleet-wide grants only)."""
        held = [_RANK[Role(r)] for r, c in self.grants if c == FLEET or (cluster and c == cluster)]
        return max(held, default=-1)

    def may(self, needed: Role, clusters: set[str] | None) -> bool:
        """``clusters`` None: the op touches the fleet itself."""
        where = [FLEET] if clusters is None else sorted(clusters) or [FLEET]
        return all(self.rank_on(c) >= _RANK[needed] for c in where)

    @property
    def seen(self) -> set[str] | None:
        """The clusters this user sees (None: the whole fleet, with any fleet-wide role)."""
        if any(c == FLEET for _r, c in self.grants):
            return None
        return {c for _r, c in self.grants}

    @property
    def fleet_administrator(self) -> bool:
        return self.may(Role.ADMINISTRATOR, None)


def needed_role(op: Op) -> tuple[Role, str]:
    """The role ``op`` needs, and why (for the refusal)."""
    if isinstance(op, OpVmMigrate) and op.ignore:
        return Role.ADMINISTRATOR, "ignoring preflight findings (--ignore)"
    if isinstance(op, OpVmDelete) and op.force:
        return Role.ADMINISTRATOR, "a forced delete"
    if getattr(op, "allow_overcommit", False):
        return Role.ADMINISTRATOR, "breaking a cluster's reserve (--allow-overcommit)"
    if op.kind in OPERATOR_OPS:
        return Role.OPERATOR, op.kind
    return Role.ADMINISTRATOR, op.kind


def require(p: Principal, needed: Role, clusters: set[str] | None, what: str) -> None:
    """Raise E_FORBIDDEN unless ``p`` holds ``needed`` on every cluster in ``clusters``."""
    if p.may(needed, clusters):
        return
    where = (
        "the fleet"
        if clusters is None or not clusters
        else "cluster " + ", ".join(sorted(clusters))
    )
    held = ", ".join(f"{r} on {c or 'the fleet'}" for r, c in p.grants) or "no role"
    raise Forbidden(
        "E_FORBIDDEN",
        f"user {p.user!r} may not do {what} on {where}: it needs {needed.value} there, "
        f"and the user has {held}",
        f"ask an administrator: 'whimbrel role grant {p.user} {needed.value}"
        + ("'" if clusters is None or not clusters else f" --cluster {sorted(clusters)[0]}'"),
    )
