"""Routes for clusters' reserve and verification, HA registration, placement."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from whimbrel.access import request
from whimbrel.access.policy import Role, require
from whimbrel.access.scope import one, vm_cluster
from whimbrel.api.views import cluster_view, vm_view
from whimbrel.manager import Manager
from whimbrel.ops import Op, OpClusterSet, OpVmHa
from whimbrel.placement.inventory import load_of, needs_of, reserves, sites
from whimbrel.placement.rating import Goal, rate
from whimbrel.placement.refresh import refresh
from whimbrel.store.repo import cluster_of_vm, get_cluster, get_vm


class ClusterSetIn(BaseModel):
    reserve: int | None = None
    detection_s: int | None = None
    isolation_response: str | None = None
    heartbeat_dir: str | None = None
    postcopy: str | None = None


class HaIn(BaseModel):
    enabled: bool
    priority: int = 2
    allow_overcommit: bool = False


def add_routes(
    app: FastAPI,
    manager: Manager,
    deps: list[Depends],
    submit: Callable[[Op], JSONResponse],
    read: Callable[[Callable[[Session], Any]], Any],
) -> None:
    @app.post("/api/v1/clusters/{name}/settings", dependencies=deps, status_code=202)
    def set_cluster(name: str, body: ClusterSetIn) -> JSONResponse:
        return submit(OpClusterSet(name, **body.model_dump()))

    @app.post("/api/v1/clusters/{name}/verify", dependencies=deps)
    def verify_cluster(name: str) -> dict[str, Any]:
        """Recompute the reserve verdict and every VM's findings (derived state only)."""
        with manager.sessions.begin() as s:
            get_cluster(s, name)
            refresh(s, "verify", name)
        with manager.sessions() as s:
            c = get_cluster(s, name)
            view = cluster_view(c)
            view["findings"] = {v.name: v.findings for h in c.hosts for v in h.vms if v.findings}
            return view

    @app.post("/api/v1/vms/{name}/ha", dependencies=deps, status_code=202)
    def set_ha(name: str, body: HaIn) -> JSONResponse:
        return submit(OpVmHa(name, body.enabled, body.priority, body.allow_overcommit))

    @app.post("/api/v1/vms/{name}/repair", dependencies=deps)
    def repair(name: str) -> dict[str, Any]:
        """VMM's Repair: look again at the VM's configuration and refresh its state."""
        request.state().record.action = "vm.repair"
        scope = read(lambda s: one(vm_cluster(s, name)))
        require(request.principal(), Role.OPERATOR, scope, "vm.repair")
        with manager.sessions.begin() as s:
            refresh(s, f"repair of VM {name}", cluster_of_vm(get_vm(s, name)))
        return dict(read(lambda s: vm_view(get_vm(s, name))))

    @app.get("/api/v1/vms/{name}/placement", dependencies=deps)
    def placement(
        name: str, goal: Goal = Goal.BALANCE, include_storage: bool = False
    ) -> dict[str, Any]:
        """Every host rated for this VM, best first, with the reasons."""

        def go(s: Session) -> dict[str, Any]:
            vm = get_vm(s, name)
            ratings = rate(
                load_of(vm), needs_of(s, vm, include_storage), sites(s), reserves(s), goal
            )
            best = next((r.host for r in ratings if r.eligible), None)
            return {
                "vm": name,
                "goal": str(goal),
                "best": best,
                "ratings": [r.to_dict() for r in ratings],
            }

        return dict(read(go))
