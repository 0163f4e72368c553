"""The fleet's lists, a page at a time: hosts, VMs and jobs.

Each list is ordered by a unique key and read by keyset: ``limit`` rows after
``cursor`` (the last key of the previous page), so a page costs the same at
40,000 VMs as at 40.  The body stays a JSON list; the next page's cursor is in
the ``X-Next-Cursor`` header and a ``Link: rel="next"`` (absent on the last
page).  Filters (``host``, ``cluster``, ``state``, ``match``: a part of the name;
``kind`` and ``subject`` for jobs) narrow the page in the query.
Guest heartbeats are read from the hosts only when asked, for one page.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request, Response
from fastapi.params import Depends
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from whimbrel.access.request import principal as request_principal
from whimbrel.access.scope import jobs_seen
from whimbrel.api.views import host_view, job_view, vm_view
from whimbrel.errors import InvalidInput, NotFound, WhimbrelError
from whimbrel.manager import Manager
from whimbrel.replica.member import replicas
from whimbrel.store.models import Cluster, Host, Job, Vm

PAGE = 500  # rows when no limit is given
PAGE_MAX = 5000
HEARTBEAT_PAGE_MAX = 200  # heartbeats are read live from the hosts: a page of them at most


def _limit(limit: int | None, cap: int) -> int:
    if limit is None:
        return min(PAGE, cap)
    if not 1 <= limit <= cap:
        raise InvalidInput(
            "E_INVALID_LIMIT",
            f"limit {limit} is not between 1 and {cap}",
            f"ask for at most {cap} rows a page and follow X-Next-Cursor for the rest",
        )
    return limit


def _page(
    request: Request,
    response: Response,
    rows: Sequence[Any],
    limit: int,
    key: Callable[[Any], str],
) -> Sequence[Any]:
    """Trim the one row read past the page, and point at the next page."""
    if len(rows) <= limit:
        return rows
    rows = rows[:limit]
    cursor = key(rows[-1])
    query = {k: v for k, v in request.query_params.items() if k != "cursor"}
    response.headers["X-Next-Cursor"] = cursor
    link = f"{request.url.path}?{urlencode({**query, 'cursor': cursor})}"
    response.headers["Link"] = f'<{link}>; rel="next"'
    return rows


def add_routes(
    app: FastAPI,
    manager: Manager,
    deps: list[Depends],
    read: Callable[[Callable[[Session], Any]], Any],
) -> None:
    @app.get("/api/v1/hosts", dependencies=deps)
    def list_hosts(
        request: Request,
        response: Response,
        limit: int | None = None,
        cursor: str = "",
        cluster: str = "",
        state: str = "",
        match: str = "",
    ) -> list[dict[str, Any]]:
        n = _limit(limit, PAGE_MAX)
        q = select(Host).options(selectinload(Host.cluster), selectinload(Host.vms))
        q = q.where(Host.name > cursor).order_by(Host.name).limit(n + 1)
        seen = request_principal().seen
        if cluster or seen is not None:
            q = q.join(Cluster, Host.cluster_id == Cluster.id)
        if cluster:
            q = q.where(Cluster.name == cluster)
        if seen is not None:
            q = q.where(Cluster.name.in_(seen))
        if state:
            q = q.where(Host.state == state)
        if match:
            q = q.where(Host.name.contains(match, autoescape=True))
        rows = read(lambda s: [host_view(h) for h in s.scalars(q)])
        return list(_page(request, response, rows, n, lambda h: h["name"]))

    @app.get("/api/v1/vms", dependencies=deps)
    def list_vms(
        request: Request,
        response: Response,
        limit: int | None = None,
        cursor: str = "",
        host: str = "",
        cluster: str = "",
        state: str = "",
        match: str = "",
        heartbeat: bool = False,
    ) -> list[dict[str, Any]]:
        n = _limit(limit, HEARTBEAT_PAGE_MAX if heartbeat else PAGE_MAX)
        q = select(Vm).options(
            selectinload(Vm.host).selectinload(Host.cluster), selectinload(Vm.disks)
        )
        q = q.where(Vm.name > cursor).order_by(Vm.name).limit(n + 1)
        seen = request_principal().seen
        if host or cluster or seen is not None:
            q = q.join(Host, Vm.host_id == Host.id)
        if host:
            q = q.where(Host.name == host)
        if cluster or seen is not None:
            q = q.join(Cluster, Host.cluster_id == Cluster.id)
        if cluster:
            q = q.where(Cluster.name == cluster)
        if seen is not None:
            q = q.where(Cluster.name.in_(seen))
        if state:
            q = q.where(Vm.state == state)
        if match:
            q = q.where(Vm.name.contains(match, autoescape=True))
        rows = list(
            _page(
                request,
                response,
                read(lambda s: [vm_view(v) for v in s.scalars(q)]),
                n,
                lambda v: v["name"],
            )
        )
        if heartbeat:
            _heartbeats(manager, rows)
        return rows

    @app.get("/api/v1/jobs", dependencies=deps)
    def list_jobs(
        request: Request,
        response: Response,
        limit: int = 50,
        cursor: str = "",
        state: str = "",
        kind: str = "",
        subject: str = "",
    ) -> list[dict[str, Any]]:
        n = _limit(limit, PAGE_MAX)
        q = select(Job).order_by(Job.id.desc()).limit(n + 1)
        if cursor:
            if not cursor.isdigit():
                raise InvalidInput(
                    "E_INVALID_CURSOR",
                    f"cursor {cursor!r} is not a job id",
                    "pass the X-Next-Cursor of the previous page as it came",
                )
            q = q.where(Job.id < int(cursor))
        if state:
            q = q.where(Job.state == state)
        if kind:
            q = q.where(Job.kind == kind)
        if subject:  # a VM's or a host's own jobs: its move history, say
            q = q.where(Job.subject == subject)
        p = request_principal()
        if p.seen is not None:
            q = q.where(jobs_seen(p.seen, p.user))
        rows = read(lambda s: [job_view(j) for j in s.scalars(q)])
        return list(_page(request, response, rows, n, lambda j: str(j["id"])))

    @app.get("/api/v1/managers", dependencies=deps)
    def list_managers() -> list[dict[str, Any]]:
        """Every replica sharing this store: alive, leader (with its epoch), or lost."""
        return list(read(replicas))

    @app.get("/api/v1/replica", dependencies=deps)
    async def this_replica() -> dict[str, Any]:
        """This replica as it sees itself, without the store or a worker thread: it
        answers even when the store does not, and tells whether it still leads and since
        when."""
        return manager.membership.state()


def _heartbeats(manager: Manager, rows: list[dict[str, Any]]) -> None:
    """Each running VM's newest heartbeat, read from the hosts side by side."""

    def one(v: dict[str, Any]) -> None:
        v["heartbeat"] = None
        if not v["host"] or v["state"] != "running":
            return
        try:
            hb = manager.conns.for_host(v["host"]).heartbeat(v["name"])
        except (NotFound, WhimbrelError):  # gone, or its host silent: no heartbeat
            return
        v["heartbeat"] = None if hb is None else hb.__dict__

    with ThreadPoolExecutor(max_workers=16) as pool:
        list(pool.map(one, rows))
