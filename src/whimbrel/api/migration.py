"""Routes for host migration settings, moves and their read-only preflight."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from whimbrel.api.views import migration_view
from whimbrel.domain.migration import DEFAULT_POLICY
from whimbrel.errors import InvalidInput
from whimbrel.jobs.flows.vm_migrate import check_move
from whimbrel.manager import Manager
from whimbrel.ops import Op, OpHostMigrationSet, OpVmMigrate
from whimbrel.store.repo import get_host

T = TypeVar("T")


class MigrationSettingsIn(BaseModel):
    """Fields left out keep their value."""

    enabled: bool | None = None
    max_live_migrations: int | None = None
    max_storage_migrations: int | None = None
    networks: list[str] | None = Field(None, description="CIDRs, or [] / ['any'] for any")
    addresses: list[str] | None = Field(None, description="the host's addresses, IP/PREFIX")
    auth: str | None = None
    performance: str | None = None
    parallel_connections: int | None = None
    encrypt: bool | None = None
    peer_pki: str | None = None


class MigrateIn(BaseModel):
    to: str = Field("", description="the destination host; may be left out with to_cluster")
    to_cluster: str = ""
    allow_overcommit: bool = False
    include_storage: bool = False
    storage_path: str = ""
    quick: bool = False
    downtime_ms: int = DEFAULT_POLICY.downtime_ms
    max_downtime_ms: int = DEFAULT_POLICY.max_downtime_ms
    auto_converge: bool = DEFAULT_POLICY.auto_converge
    postcopy: bool = False
    timeout_s_per_gib: float = DEFAULT_POLICY.timeout_s_per_gib
    on_timeout: str = "abort"
    bandwidth_mib_s: int = 0
    ignore: list[str] = Field(default_factory=list)


def _tuple(v: list[str] | None, what: str) -> tuple[str, ...] | None:
    """None: unchanged; () for 'any'.  'any' beside a network is refused: which one
    was meant is a guess, and dropping either changes what the host allows."""
    if v is None:
        return None
    if "any" in v and len(v) > 1:
        raise InvalidInput(
            "E_MIGRATION_NETWORK_INVALID",
            f"--{what} 'any' given together with {', '.join(x for x in v if x != 'any')}",
            f"give either 'any' alone or only the {what} to use",
        )
    return tuple(x for x in v if x != "any")


def add_routes(
    app: FastAPI,
    manager: Manager,
    deps: list[Depends],
    submit: Callable[[Op], JSONResponse],
    read: Callable[[Callable[[Session], Any]], Any],
) -> None:
    @app.get("/api/v1/hosts/{name}/migration", dependencies=deps)
    def show_migration(name: str) -> dict[str, Any]:
        return dict(read(lambda s: migration_view(get_host(s, name))))

    @app.post("/api/v1/hosts/{name}/migration", dependencies=deps, status_code=202)
    def set_migration(name: str, body: MigrationSettingsIn) -> JSONResponse:
        b = body.model_dump()
        b["networks"] = _tuple(body.networks, "network")
        b["addresses"] = _tuple(body.addresses, "address")
        return submit(OpHostMigrationSet(name=name, **b))

    def op_of(name: str, body: MigrateIn) -> OpVmMigrate:
        return OpVmMigrate(name=name, **{**body.model_dump(), "ignore": tuple(body.ignore)})

    @app.post("/api/v1/vms/{name}/migrate", dependencies=deps, status_code=202)
    def migrate(name: str, body: MigrateIn) -> JSONResponse:
        return submit(op_of(name, body))

    @app.post("/api/v1/vms/{name}/migrate/check", dependencies=deps)
    def check(name: str, body: MigrateIn) -> dict[str, Any]:
        """Preflight alone: every finding, and the plan; changes nothing."""
        op = op_of(name, body)
        return dict(read(lambda s: check_move(op, s, manager.conns).to_dict()))
