"""``host.migration-set``: a host's migration settings (the three cmdlets of Hyper-V's live
migration without clustering).

Enable-VMMigration/Disable-VMMigration → ``enabled``; Set-VMMigrationNetwork
and "use any network" → ``networks``; Set-VMHost → ``auth``, ``performance``,
``max_live_migrations`` and ``max_storage_migrations``.
"""

from __future__ import annotations

import dataclasses
import ipaddress
from typing import Any

from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.migration import Auth, Performance, parse_networks
from whimbrel.errors import InvalidInput
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.flows.vm_common import own_cluster
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpHostMigrationSet
from whimbrel.store.models import MigrationSettings
from whimbrel.store.repo import apply_inventory, get_host, migration_settings

_FIELDS = (
    "enabled",
    "max_live_migrations",
    "max_storage_migrations",
    "networks",
    "auth",
    "performance",
    "parallel_connections",
    "encrypt",
    "peer_pki",
)


def _bad(code: str, cause: str, fix: str) -> InvalidInput:
    return InvalidInput(code, cause, fix)


class HostMigrationSet(Flow):
    op_type = OpHostMigrationSet

    def locks(self, op: OpHostMigrationSet) -> list[str]:
        return [f"host:{op.name}"]

    def validate(self, op: OpHostMigrationSet, s: Session, conns: ConnectionPool) -> None:
        get_host(s, op.name)
        for key in ("max_live_migrations", "max_storage_migrations", "parallel_connections"):
            v = getattr(op, key)
            if v is not None and not 1 <= v <= 64:
                raise _bad(
                    "E_MIGRATION_LIMIT_INVALID",
                    f"{key.replace('_', ' ')} must be between 1 and 64, not {v}",
                    "give a number from 1 to 64 (Hyper-V's default is 2)",
                )
        if op.auth is not None and op.auth not in set(Auth):
            raise _bad(
                "E_MIGRATION_AUTH_INVALID",
                f"authentication {op.auth!r} is not managed or peer",
                "use 'managed' (the manager logs in to both hosts; CredSSP's place) or 'peer' "
                "(the source logs in to the destination itself; Kerberos delegation's place)",
            )
        if op.performance is not None and op.performance not in set(Performance):
            raise _bad(
                "E_MIGRATION_PERFORMANCE_INVALID",
                f"performance option {op.performance!r} is not tcp, compression or parallel",
                "use tcp, compression (the default) or parallel",
            )
        if op.networks is not None:
            parse_networks(list(op.networks))
        for a in op.addresses or ():
            try:
                ipaddress.ip_interface(a)
            except ValueError as exc:
                raise _bad(
                    "E_HOST_ADDRESS_INVALID",
                    f"{a!r} is not an address with a prefix",
                    "give addresses like 10.0.1.5/24",
                ) from exc

    def steps(self, op: OpHostMigrationSet) -> list[Step]:
        def snapshot(m: MigrationSettings, addresses: list[Any]) -> dict[str, Any]:
            return {**{k: getattr(m, k) for k in _FIELDS}, "addresses": list(addresses)}

        def apply(ctx: JobContext, values: dict[str, Any]) -> None:
            with ctx.sessions() as s:
                new = migration_settings(get_host(s, op.name))
            known = {k: v for k, v in values.items() if k != "addresses"}
            if "networks" in known:
                known["networks"] = tuple(known["networks"])
            if "auth" in known:
                known["auth"] = Auth(known["auth"])
            if "performance" in known:
                known["performance"] = Performance(known["performance"])
            # A host that keeps its own settings (Hyper-V) gets them first: if it
            # refuses, the store is unchanged.
            drv = own_cluster(ctx, op.name)
            inv = None
            if drv is not None:
                drv.apply_migration_settings(dataclasses.replace(new, **known))
                inv = drv.inventory()  # what now holds: a cluster's limit wins over the host's
            with ctx.sessions.begin() as s:
                host = get_host(s, op.name)
                if host.migration is None:
                    host.migration = MigrationSettings()
                for k, v in values.items():
                    if k == "addresses":
                        host.addresses = list(v)
                    else:
                        setattr(host.migration, k, v)
                if inv is not None:
                    apply_inventory(host, inv)

        def run(ctx: JobContext) -> StepResult:
            with ctx.sessions() as s:
                host = get_host(s, op.name)
                before = snapshot(host.migration or MigrationSettings(), host.addresses)
            changes = {k: getattr(op, k) for k in (*_FIELDS, "addresses")}
            changes = {k: v for k, v in changes.items() if v is not None}
            if "networks" in changes:
                changes["networks"] = list(parse_networks(list(changes["networks"])))
            apply(ctx, changes)
            return {"before": before}

        def undo(ctx: JobContext, r: StepResult) -> None:
            apply(ctx, (r or {})["before"])

        return [FnStep("apply", f"change migration settings of host {op.name}", run, undo)]
