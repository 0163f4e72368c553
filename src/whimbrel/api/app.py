"""FastAPI application: authentication, error mapping and the routes.

Every mutating route builds an op and submits it; the answer is the job
(HTTP 202), which the client follows at ``/api/v1/jobs/{id}``.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any, TypeVar

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, JSONResponse
from pydantic import BaseModel, Field
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from whimbrel import __version__
from whimbrel.access import request
from whimbrel.access.policy import Role, needed_role, require
from whimbrel.access.scope import clusters_of, shown
from whimbrel.api.access import add_routes as access_routes
from whimbrel.api.events import add_routes as event_routes
from whimbrel.api.failover import add_routes as failover_routes
from whimbrel.api.feed import ChangeFeed
from whimbrel.api.guard import RequestGuard
from whimbrel.api.ha import add_routes as ha_routes
from whimbrel.api.lists import add_routes as list_routes
from whimbrel.api.maintenance import add_routes as maintenance_routes
from whimbrel.api.migration import add_routes as migration_routes
from whimbrel.api.sources import add_routes as source_routes
from whimbrel.api.views import cluster_view, host_view, job_view, vm_view
from whimbrel.errors import NotFound, WhimbrelError, http_status
from whimbrel.manager import Manager
from whimbrel.ops import (
    DiskRequest,
    Op,
    OpClusterAddHost,
    OpClusterCreate,
    OpClusterDelete,
    OpClusterRemoveHost,
    OpHostAdd,
    OpHostRefresh,
    OpHostRemove,
    OpVmCreate,
    OpVmDelete,
    OpVmRestore,
    OpVmSave,
    OpVmStart,
    OpVmStop,
    op_from_dict,
)
from whimbrel.store.models import Cluster, Host
from whimbrel.store.repo import (
    cluster_of_host,
    cluster_of_vm,
    get_cluster,
    get_host,
    get_job,
    get_vm,
    job_not_found,
)
from whimbrel.web import ASSETS, CONSOLE, MEDIA

T = TypeVar("T")


class HostIn(BaseModel):
    name: str
    uri: str
    cluster: str = ""


class ClusterIn(BaseModel):
    name: str
    shared_paths: list[str] = Field(default_factory=list)
    reserve: int = 1


class MemberIn(BaseModel):
    host: str


class DiskIn(BaseModel):
    size_mib: int
    pool: str


class VmIn(BaseModel):
    name: str
    host: str = Field("", description="left out: the best-rated host that has the pools")
    memory_mib: int | None = Field(None, description="left out: the template's, else 256")
    vcpus: int | None = Field(None, description="left out: the template's, else 1")
    disks: list[DiskIn] = Field(default_factory=list)
    networks: list[str] = Field(default_factory=list)
    kernel: str = ""
    initrd: str = ""
    cmdline: str = ""
    start: bool = True
    ha: bool = False
    allow_overcommit: bool = False
    image: str = Field("", description="a disk image on the host: the first disk's content")
    template: str = ""
    clone: str = Field("", description="full or linked (required with a template)")
    iso: str = Field("", description="an ISO image on the host, in the CD-ROM drive")
    boot_cdrom: bool = False


class StopIn(BaseModel):
    force: bool = False
    timeout_s: float = 60.0


# Seconds after which a loop that has not completed a pass counts as stuck.
STALE_S = {"scheduler": 10.0, "janitor": 120.0, "monitor": 60.0}


def create_app(manager: Manager, start_runner: bool = True) -> FastAPI:
    feed = ChangeFeed(manager.sessions)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        if start_runner:
            manager.start()
        yield
        feed.stop()
        if start_runner:
            manager.stop()

    app = FastAPI(title="Whimbrel", version=__version__, lifespan=lifespan)
    app.add_middleware(
        RequestGuard,
        authenticate=manager.authenticate,
        audit=manager.audit,
        fresh=manager.recently_verified,
    )

    @app.exception_handler(WhimbrelError)
    async def whimbrel_error(_req: Request, exc: WhimbrelError) -> JSONResponse:
        request.state().record.code = exc.code
        return JSONResponse(status_code=http_status(exc), content={"error": exc.to_dict()})

    @app.exception_handler(RequestValidationError)
    async def bad_request(_req: Request, exc: RequestValidationError) -> JSONResponse:
        err = {
            "code": "E_INVALID_REQUEST",
            "category": "invalid_input",
            "cause": "the request body does not match the API",
            "fix": "see the API schema at /docs",
            "detail": str(exc.errors())[:2000],
        }
        request.state().record.code = "E_INVALID_REQUEST"
        return JSONResponse(status_code=400, content={"error": err})

    async def reader() -> None:
        """Any role, on the fleet or one cluster, reads (in the event loop: no thread)."""
        p = request.principal()
        if not p.grants:
            require(p, Role.READ_ONLY, set(), "reading")

    deps = [Depends(reader)]

    def submit(op: Op) -> JSONResponse:
        """Submit ``op`` for the request's user, if their roles allow it where it acts."""
        p, record = request.principal(), request.state().record
        record.action = op.kind
        needed, what = needed_role(op)
        with manager.sessions() as s:
            require(p, needed, clusters_of(s, op), what)
        job_id = manager.runner.submit(op, user=p.user)
        record.job_id = job_id
        with manager.sessions() as s:
            return JSONResponse(status_code=202, content=job_view(get_job(s, job_id)))

    def read(fn: Callable[[Session], T]) -> T:
        with manager.sessions() as s:
            return fn(s)

    @app.get("/", include_in_schema=False)
    def console() -> FileResponse:
        """The web console; it asks for the token and reads this API with it."""
        return FileResponse(CONSOLE, media_type="text/html")

    @app.get("/console/{name}", include_in_schema=False)
    def console_file(name: str) -> FileResponse:
        path = ASSETS.get(name)
        if path is None:
            raise NotFound("E_NOT_FOUND", f"the console has no file {name}", "open / instead")
        return FileResponse(path, media_type=MEDIA[path.suffix])

    @app.get("/api/v1/health")
    async def health() -> JSONResponse:
        """The manager's own loops: a stale one makes the answer 503, not "ok".  From
        memory, in the event loop: it answers with every worker stuck on the store."""
        ages = {
            **manager.runner.health(),
            "monitor": round(time.time() - manager.monitor.last_pass, 1),
        }
        stale = [k for k, limit in STALE_S.items() if ages.get(k, 0.0) > limit]
        if ages["db_down_s"] > 0:
            stale.append("database")
        me = manager.membership
        if not me.holding():
            stale.append("replica lease")
        body = {
            "status": "stale: " + ", ".join(stale) if stale else "ok",
            "version": __version__,
            "replica": me.name,
            "leader": me.leading(),
            "epoch": me.epoch if me.leading() else None,
            "lease": round(time.time() - me.last_pass, 1),
            **ages,
        }
        return JSONResponse(body, status_code=503 if stale else 200)

    migration_routes(app, manager, deps, submit, read)
    ha_routes(app, manager, deps, submit, read)
    maintenance_routes(app, manager, deps, submit, read)
    failover_routes(app, manager, deps, submit, read)
    list_routes(app, manager, deps, read)
    event_routes(app, manager, feed, deps)
    source_routes(app, deps, submit, read)
    access_routes(app, manager)

    # -- hosts -----------------------------------------------------------------
    @app.get("/api/v1/hosts/{name}", dependencies=deps)
    def show_host(name: str) -> dict[str, Any]:
        def go(s: Session) -> dict[str, Any]:
            h = get_host(s, name)
            shown(request.principal().seen, cluster_of_host(h), "host", name)
            return host_view(h, detail=True)

        return read(go)

    @app.post("/api/v1/hosts", dependencies=deps, status_code=202)
    def add_host(body: HostIn) -> JSONResponse:
        return submit(OpHostAdd(body.name, body.uri, body.cluster))

    @app.post("/api/v1/hosts/{name}/refresh", dependencies=deps, status_code=202)
    def refresh_host(name: str) -> JSONResponse:
        return submit(OpHostRefresh(name))

    @app.delete("/api/v1/hosts/{name}", dependencies=deps, status_code=202)
    def remove_host(name: str) -> JSONResponse:
        return submit(OpHostRemove(name))

    # -- clusters --------------------------------------------------------------
    @app.get("/api/v1/clusters", dependencies=deps)
    def list_clusters() -> list[dict[str, Any]]:
        seen = request.principal().seen
        # Loaded in four queries, not one per host: the console's first paint waits on it.
        q = (
            select(Cluster)
            .order_by(Cluster.name)
            .options(
                selectinload(Cluster.hosts).selectinload(Host.vms),
                selectinload(Cluster.shared_storage),
            )
        )
        if seen is not None:
            q = q.where(Cluster.name.in_(seen))
        return read(lambda s: [cluster_view(c) for c in s.scalars(q)])

    @app.get("/api/v1/clusters/{name}", dependencies=deps)
    def show_cluster(name: str) -> dict[str, Any]:
        shown(request.principal().seen, name, "cluster", name)
        return read(lambda s: cluster_view(get_cluster(s, name)))

    @app.post("/api/v1/clusters", dependencies=deps, status_code=202)
    def create_cluster(body: ClusterIn) -> JSONResponse:
        return submit(OpClusterCreate(body.name, tuple(body.shared_paths), body.reserve))

    @app.delete("/api/v1/clusters/{name}", dependencies=deps, status_code=202)
    def delete_cluster(name: str) -> JSONResponse:
        return submit(OpClusterDelete(name))

    @app.post("/api/v1/clusters/{name}/hosts", dependencies=deps, status_code=202)
    def cluster_add_host(name: str, body: MemberIn) -> JSONResponse:
        return submit(OpClusterAddHost(name, body.host))

    @app.delete("/api/v1/clusters/{name}/hosts/{host}", dependencies=deps, status_code=202)
    def cluster_remove_host(name: str, host: str) -> JSONResponse:
        return submit(OpClusterRemoveHost(name, host))

    # -- VMs -------------------------------------------------------------------
    @app.get("/api/v1/vms/{name}", dependencies=deps)
    def show_vm(name: str) -> dict[str, Any]:
        def go(s: Session) -> dict[str, Any]:
            vm = get_vm(s, name)
            shown(request.principal().seen, cluster_of_vm(vm), "vm", name)
            return vm_view(vm)

        return read(go)

    @app.get("/api/v1/vms/{name}/heartbeat", dependencies=deps)
    def vm_heartbeat(name: str) -> dict[str, Any]:
        """The guest's newest heartbeat line, read live from its host."""

        def host_of(s: Session) -> str | None:
            vm = get_vm(s, name)
            shown(request.principal().seen, cluster_of_vm(vm), "vm", name)
            return vm.host.name if vm.host is not None else None

        host = read(host_of)
        if not host:
            return {"heartbeat": None}
        try:
            hb = manager.conns.for_host(host).heartbeat(name)
        except NotFound:  # gone from its host before the monitor noticed: it is silent
            hb = None
        return {"heartbeat": None if hb is None else hb.__dict__}

    @app.post("/api/v1/vms", dependencies=deps, status_code=202)
    def create_vm(body: VmIn) -> JSONResponse:
        return submit(
            OpVmCreate(
                name=body.name,
                host=body.host,
                # With a template, what is left out is the template's (filled in the flow).
                memory_mib=body.memory_mib or (0 if body.template else 256),
                vcpus=body.vcpus or (0 if body.template else 1),
                disks=tuple(DiskRequest(d.size_mib, d.pool) for d in body.disks),
                networks=tuple(body.networks),
                kernel=body.kernel,
                initrd=body.initrd,
                cmdline=body.cmdline,
                start=body.start,
                ha=body.ha,
                allow_overcommit=body.allow_overcommit,
                image=body.image,
                template=body.template,
                clone=body.clone,
                iso=body.iso,
                boot_cdrom=body.boot_cdrom,
            )
        )

    @app.post("/api/v1/vms/{name}/start", dependencies=deps, status_code=202)
    def start_vm(name: str) -> JSONResponse:
        return submit(OpVmStart(name))

    @app.post("/api/v1/vms/{name}/stop", dependencies=deps, status_code=202)
    def stop_vm(name: str, body: StopIn | None = None) -> JSONResponse:
        body = body or StopIn()
        return submit(OpVmStop(name, body.force, body.timeout_s))

    @app.post("/api/v1/vms/{name}/save", dependencies=deps, status_code=202)
    def save_vm(name: str) -> JSONResponse:
        return submit(OpVmSave(name))

    @app.post("/api/v1/vms/{name}/restore", dependencies=deps, status_code=202)
    def restore_vm(name: str) -> JSONResponse:
        return submit(OpVmRestore(name))

    @app.delete("/api/v1/vms/{name}", dependencies=deps, status_code=202)
    def delete_vm(name: str, force: bool = False) -> JSONResponse:
        return submit(OpVmDelete(name, force))

    # -- jobs ------------------------------------------------------------------
    @app.get("/api/v1/jobs/{job_id}", dependencies=deps)
    def show_job(job_id: int) -> dict[str, Any]:
        p = request.principal()

        def go(s: Session) -> dict[str, Any]:
            job = get_job(s, job_id)
            if p.seen is not None and job.user != p.user:
                scope = clusters_of(s, op_from_dict(job.op))
                if scope is None or not scope <= p.seen:
                    raise job_not_found(job_id)
            return job_view(job, steps=True)

        return read(go)

    @app.post("/api/v1/jobs/{job_id}/cancel", dependencies=deps, status_code=202)
    def cancel_job(job_id: int) -> dict[str, Any]:
        def scope(s: Session) -> set[str] | None:
            return clusters_of(s, op_from_dict(get_job(s, job_id).op))

        request.state().record.action = "job.cancel"
        request.state().record.job_id = job_id
        require(request.principal(), Role.OPERATOR, read(scope), "job.cancel")
        manager.runner.cancel(job_id)
        return read(lambda s: job_view(get_job(s, job_id)))

    return app
