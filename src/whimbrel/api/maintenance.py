"""Routes for maintenance mode: the plan (a dry run), start and stop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy.orm import Session

from whimbrel.manager import Manager
from whimbrel.ops import Op, OpHostMaintenanceStart, OpHostMaintenanceStop
from whimbrel.placement.maintenance import plan


class MaintenanceStopIn(BaseModel):
    move_back: bool = False
    restart_saved: bool = False


def add_routes(
    app: FastAPI,
    manager: Manager,
    deps: list[Depends],
    submit: Callable[[Op], JSONResponse],
    read: Callable[[Callable[[Session], Any]], Any],
) -> None:
    @app.get("/api/v1/hosts/{name}/maintenance/plan", dependencies=deps)
    def maintenance_plan(name: str) -> dict[str, Any]:
        """What start would do to each VM, with each move's preflight; changes nothing."""
        return dict(read(lambda s: plan(s, name, manager.conns).to_dict()))

    @app.post("/api/v1/hosts/{name}/maintenance/start", dependencies=deps, status_code=202)
    def maintenance_start(name: str) -> JSONResponse:
        return submit(OpHostMaintenanceStart(name=name))

    @app.post("/api/v1/hosts/{name}/maintenance/stop", dependencies=deps, status_code=202)
    def maintenance_stop(name: str, body: MaintenanceStopIn) -> JSONResponse:
        return submit(OpHostMaintenanceStop(name=name, **body.model_dump()))
