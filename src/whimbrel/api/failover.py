"""Routes for failover: a host's fence agent, and the administrator's word that it is off."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy.orm import Session

from whimbrel.manager import Manager
from whimbrel.ops import Op, OpHostFailover, OpHostFenceSet
from whimbrel.store.repo import get_host


class FenceIn(BaseModel):
    agent: str = Field(description="'lab', a fence-agents program such as fence_ipmilan, or ''")
    options: dict[str, str] = Field(default_factory=dict)


def _shown(fence: dict[str, Any]) -> dict[str, Any]:
    """The settings without secrets."""
    opts = {
        k: ("***" if "pass" in k.lower() else v) for k, v in dict(fence.get("options", {})).items()
    }
    return {"agent": fence.get("agent", ""), "options": opts}


def add_routes(
    app: FastAPI,
    manager: Manager,
    deps: list[Depends],
    submit: Callable[[Op], JSONResponse],
    read: Callable[[Callable[[Session], Any]], Any],
) -> None:
    @app.get("/api/v1/hosts/{name}/fence", dependencies=deps)
    def fence_show(name: str) -> dict[str, Any]:
        return dict(read(lambda s: _shown(get_host(s, name).fence)))

    @app.post("/api/v1/hosts/{name}/fence", dependencies=deps, status_code=202)
    def fence_set(name: str, body: FenceIn) -> JSONResponse:
        return submit(OpHostFenceSet(name=name, agent=body.agent, options=body.options))

    @app.post("/api/v1/hosts/{name}/fence/confirm", dependencies=deps, status_code=202)
    def fence_confirm(name: str) -> JSONResponse:
        """The administrator switched the lost host off: fail its HA VMs over now."""
        evidence = "the administrator confirmed the host is off"
        return submit(OpHostFailover(name=name, evidence=evidence, confirmed_off=True))
