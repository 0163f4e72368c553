"""Routes for failover: a host's fence agent, and the administrator's word that it is off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from whimbrel.access import request
from whimbrel.access.policy import needed_role, require
from whimbrel.access.scope import clusters_of, shown
from whimbrel.access.vault import masked
from whimbrel.ha.fence import check_config
from whimbrel.ha.guards import ha_settings
from whimbrel.manager import Manager
from whimbrel.ops import Op, OpHaSet, OpHostFailover, OpHostFenceSet
from whimbrel.store.repo import cluster_of_host, get_host


class FenceIn(BaseModel):
    agent: str = Field(description="'lab', a fence-agents program such as fence_ipmilan, or ''")
    options: dict[str, str] = Field(default_factory=dict)


class ConfirmIn(BaseModel):
    off: bool = Field(False, description="the host is already off: no agent is run")


class HaSetIn(BaseModel):
    fence_cap: int | None = None
    fence_window_s: int | None = None


def _shown(fence: dict[str, Any]) -> dict[str, Any]:
    """The settings without secrets."""
    return {"agent": fence.get("agent", ""), "options": masked(dict(fence.get("options", {})))}


def add_routes(
    app: FastAPI,
    manager: Manager,
    deps: list[Depends],
    submit: Callable[[Op], JSONResponse],
    read: Callable[[Callable[[Session], Any]], Any],
) -> None:
    @app.get("/api/v1/hosts/{name}/fence", dependencies=deps)
    def fence_show(name: str) -> dict[str, Any]:
        def go(s: Session) -> dict[str, Any]:
            h = get_host(s, name)
            shown(request.principal().seen, cluster_of_host(h), "host", name)
            return _shown(h.fence)

        return dict(read(go))

    @app.post("/api/v1/hosts/{name}/fence", dependencies=deps, status_code=202)
    def fence_set(name: str, body: FenceIn) -> JSONResponse:
        """The agent's secret options are sealed here: the job carries references only."""
        bare = OpHostFenceSet(name=name, agent=body.agent)
        request.state().record.action = bare.kind
        with manager.sessions.begin() as s:
            # Who may, and options the agent documents, before anything is stored.
            needed, what = needed_role(bare)
            require(request.principal(), needed, clusters_of(s, bare), what)
            get_host(s, name)
            if body.agent:
                check_config(name, {"agent": body.agent, "options": body.options})
            options = manager.vault.seal_options(s, f"host {name} fence", body.options)
        return submit(OpHostFenceSet(name=name, agent=body.agent, options=options))

    @app.post("/api/v1/hosts/{name}/fence/confirm", dependencies=deps, status_code=202)
    def fence_confirm(name: str, body: ConfirmIn | None = None) -> JSONResponse:
        """The administrator's word on a lost host: fail its HA VMs over now.

        With a fence agent and without ``off``, the agent fences it past the fence cap;
        with ``off`` (or no agent) the administrator says it is already off."""
        off = body.off if body is not None else False

        def agent_of(s: Session) -> bool:
            return bool(get_host(s, name).fence.get("agent"))

        if not off and read(agent_of):
            evidence = "the administrator approved fencing past the fence cap"
            return submit(OpHostFailover(name=name, evidence=evidence, approved=True))
        evidence = "the administrator confirmed the host is off"
        return submit(OpHostFailover(name=name, evidence=evidence, confirmed_off=True))

    @app.get("/api/v1/ha", dependencies=deps)
    def ha_show() -> dict[str, Any]:
        """The fleet's failover guards and what the watch concludes now."""

        def go(s: Session) -> dict[str, Any]:
            row = ha_settings(s)
            return {"fence_cap": row.fence_cap, "fence_window_s": row.fence_window_s}

        watch = manager.monitor.watch
        isolated = watch.manager_isolated if watch is not None else False
        return {**read(go), "manager_isolated": isolated}

    @app.post("/api/v1/ha", dependencies=deps, status_code=202)
    def ha_set(body: HaSetIn) -> JSONResponse:
        return submit(OpHaSet(body.fence_cap, body.fence_window_s))
