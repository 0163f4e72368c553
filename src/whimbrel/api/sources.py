"""Routes for a VM's CD-ROM, the import of an existing domain, and templates."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import FastAPI
from fastapi.params import Depends
from fastapi.responses import JSONResponse
from pydantic import BaseModel
from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.jobs.flows.vm_sources import get_template
from whimbrel.ops import Op, OpTemplateCreate, OpTemplateDelete, OpVmCdrom, OpVmImport
from whimbrel.store.catalog import Template


class CdromIn(BaseModel):
    iso: str = ""  # empty: eject


class ImportIn(BaseModel):
    host: str
    name: str


class TemplateIn(BaseModel):
    name: str
    vm: str
    pool: str


def template_view(t: Template) -> dict[str, Any]:
    return {
        "name": t.name,
        "host": t.host,
        "pool": t.pool,
        "path": t.path,
        "size_bytes": t.size_bytes,
        "memory_mib": t.memory_mib,
        "vcpus": t.vcpus,
        "networks": t.networks,
        "kernel": t.kernel,
        "initrd": t.initrd,
        "cmdline": t.cmdline,
        "source_vm": t.source_vm,
        "created_at": t.created_at.isoformat() if t.created_at else None,
    }


def add_routes(
    app: FastAPI,
    deps: list[Depends],
    submit: Callable[[Op], JSONResponse],
    read: Callable[[Callable[[Session], Any]], Any],
) -> None:
    @app.post("/api/v1/vms/{name}/cdrom", dependencies=deps, status_code=202)
    def cdrom(name: str, body: CdromIn) -> JSONResponse:
        """Insert an ISO (a path on the VM's host) or, with none, eject."""
        return submit(OpVmCdrom(name=name, iso=body.iso))

    @app.post("/api/v1/vms/import", dependencies=deps, status_code=202)
    def import_vm(body: ImportIn) -> JSONResponse:
        return submit(OpVmImport(host=body.host, name=body.name))

    @app.get("/api/v1/templates", dependencies=deps)
    def list_templates() -> list[dict[str, Any]]:
        return list(
            read(
                lambda s: [
                    template_view(t) for t in s.scalars(select(Template).order_by(Template.name))
                ]
            )
        )

    @app.get("/api/v1/templates/{name}", dependencies=deps)
    def show_template(name: str) -> dict[str, Any]:
        return dict(read(lambda s: template_view(get_template(s, name))))

    @app.post("/api/v1/templates", dependencies=deps, status_code=202)
    def create_template(body: TemplateIn) -> JSONResponse:
        return submit(OpTemplateCreate(name=body.name, vm=body.vm, pool=body.pool))

    @app.delete("/api/v1/templates/{name}", dependencies=deps, status_code=202)
    def delete_template(name: str) -> JSONResponse:
        return submit(OpTemplateDelete(name=name))
