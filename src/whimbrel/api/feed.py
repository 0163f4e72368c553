"""The change feed behind the console's live view: what changed in the fleet, as events.

Any replica can write the store (a job run elsewhere, a host the monitor of the
leader found lost), so the feed does not listen to this process's own writes: one
thread per replica reads the store's current state and sends what differs from its
last read.  It reads only while someone listens.  Jobs under way are read every
``INTERVAL_S`` (their progress is what a console watches); hosts, VMs and clusters
at a pace that follows the read's CPU cost (at most ``DUTY`` of a core), so 25,000 VMs
are never read more often than the store can afford.

Events are plain dicts ``{"type": ..., "data": ...}``:
``job`` (the job's view), ``host``, ``vm``, ``cluster`` (summaries), ``gone``
(``{"kind", "name"}``) and ``reset`` (a listener that fell behind: read the lists
again).  Each carries the cluster it belongs to, for the listener's scope.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Text, cast, func, or_, select
from sqlalchemy.orm import Session, aliased

from whimbrel.api.views import job_view
from whimbrel.domain.job import FINAL_JOB_STATES
from whimbrel.store.models import Cluster, Host, Job, Vm

log = logging.getLogger(__name__)

INTERVAL_S = 0.5  # the fastest pace: a job's progress is written about twice a second
DUTY = 0.1  # share of a core the reads may take; costlier reads stretch the interval
QUEUE_MAX = 2000  # events a listener may hold unread before it is told to reset

Event = dict[str, Any]
Key = tuple[str, str]
Raw = Any  # a row as read: a tuple for hosts and VMs, a dict for clusters


def _unsupported(findings: str) -> bool:
    return any(f.get("severity") == "error" for f in json.loads(findings))


def _host(r: tuple[Any, ...]) -> dict[str, Any]:
    keys = ("name", "cluster", "state", "state_reason", "state_since", "maintenance", "uri",
            "memory_mib", "free_memory_mib", "virt_type", "vms")  # fmt: skip
    out = dict(zip(keys, r, strict=True))
    out["state_since"] = r[4].isoformat() if r[4] else None
    return out


def _vm(r: tuple[Any, ...]) -> dict[str, Any]:
    findings = json.loads(r[7]) if r[7] else []
    return {
        "name": r[0],
        "host": r[1],
        "cluster": r[2],
        "state": r[3],
        "memory_mib": r[4],
        "ha": bool(r[5]),
        "ha_priority": r[6],
        "findings": len(findings),
        "unsupported_cluster_configuration": any(f.get("severity") == "error" for f in findings),
    }


RENDER: dict[str, Callable[[Any], dict[str, Any]]] = {
    "host": _host,
    "vm": _vm,
    "cluster": lambda row: dict(row),
}


@dataclass
class Listener:
    """One stream's queue, filled from the feed's thread, read in the stream's loop."""

    loop: asyncio.AbstractEventLoop
    seen: set[str] | None  # the clusters this listener may see; None: the fleet
    user: str
    queue: asyncio.Queue[Event] = field(default_factory=lambda: asyncio.Queue(QUEUE_MAX))

    def offer(self, events: list[Event]) -> None:
        """In the listener's loop: keep what its scope shows; a full queue resets."""
        for ev in events:
            if not self.shows(ev):
                continue
            if self.queue.full():
                while not self.queue.empty():
                    self.queue.get_nowait()
                self.queue.put_nowait({"type": "reset", "data": {"why": "fell behind"}})
                return
            self.queue.put_nowait(ev)

    def shows(self, ev: Event) -> bool:
        if self.seen is None or ev["type"] == "reset":
            return True
        if ev["type"] == "job" and ev["data"].get("user") == self.user:
            return True
        return ev.get("cluster") in self.seen


class ChangeFeed:
    """Reads the fleet's state while anyone listens and hands each listener the changes."""

    def __init__(self, sessions: Callable[[], AbstractContextManager[Session]]) -> None:
        self.sessions = sessions
        self._listeners: list[Listener] = []
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._state: dict[Key, Any] = {}
        self._max_job = 0
        self._active_jobs: set[int] = set()
        self._job_digests: dict[int, Any] = {}
        self.delivered = 0  # events handed to listeners, for the benchmark
        self.last_read_s = 0.0

    def subscribe(self, seen: set[str] | None, user: str) -> Listener:
        lst = Listener(asyncio.get_running_loop(), seen, user)
        with self._lock:
            self._listeners.append(lst)
            if self._thread is None or not self._thread.is_alive():
                self._stop.clear()
                self._thread = threading.Thread(target=self._run, name="feed", daemon=True)
                self._thread.start()
        return lst

    def unsubscribe(self, lst: Listener) -> None:
        with self._lock, contextlib.suppress(ValueError):
            self._listeners.remove(lst)

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()

    def _run(self) -> None:
        first, fleet_due = True, 0.0
        while not self._stop.is_set():
            with self._lock:
                listeners = list(self._listeners)
            if not listeners:  # nobody listens: forget, so the next one starts afresh
                with self._lock:
                    if not self._listeners:
                        self._state, self._job_digests = {}, {}
                        self._max_job, self._active_jobs = 0, set()
                        self._thread = None
                        return
            began, cpu = time.monotonic(), time.thread_time()
            fleet = began >= fleet_due
            try:
                events = self.read(first, fleet)
            except Exception:  # the store is away: try again at the next pace
                log.warning("change feed: the store could not be read", exc_info=True)
                events = []
            # The cost is this thread's CPU: waiting for a busy machine or a remote
            # database costs no core, and must not slow the console down.
            took = time.thread_time() - cpu
            if fleet:  # the next fleet read waits until this one's cost is paid back
                self.last_read_s = took
                fleet_due = began + max(INTERVAL_S, took / DUTY)
            first = False
            if events:
                for lst in listeners:
                    lst.loop.call_soon_threadsafe(lst.offer, events)
                self.delivered += len(events) * len(listeners)
            # A fleet read's cost is paid back through fleet_due; a jobs read's here.
            self._wake.wait(INTERVAL_S if fleet else max(INTERVAL_S, took / DUTY))
            self._wake.clear()

    def read(self, first: bool = False, fleet: bool = True) -> list[Event]:
        """Read the store once (jobs always; hosts, VMs and clusters with ``fleet``);
        the events that take the last read to this one."""
        with self.sessions() as s:
            jobs = self._jobs(s)
            now = dict(self._hosts(s)) | dict(self._vms(s)) if fleet else {}
            if fleet:
                now |= self._clusters(s, now)
        events: list[Event] = []
        if fleet and not first:  # the first read is the baseline: the listener read the lists
            for key, (cluster, row) in now.items():
                if self._state.get(key, (None, None))[1] != row:
                    data = RENDER[key[0]](row)
                    events.append({"type": key[0], "cluster": cluster, "data": data})
            for key, (cluster, _row) in self._state.items():
                if key not in now:
                    gone = {"kind": key[0], "name": key[1]}
                    events.append({"type": "gone", "cluster": cluster, "data": gone})
        if fleet:
            self._state = now
        for cluster, view in jobs:
            if not first or view["state"] not in FINAL_JOB_STATES:
                events.append({"type": "job", "cluster": cluster, "data": view})
        return events

    # Rows are kept as read (tuples, a VM's findings as their JSON text) and turned into
    # an event's dict only when they changed: a read of 25,000 unchanged VMs builds none.

    def _hosts(self, s: Session) -> Iterator[tuple[Key, tuple[str | None, Raw]]]:
        counts = select(Vm.host_id, func.count().label("n")).group_by(Vm.host_id).subquery()
        q = (
            select(
                Host.name,
                Cluster.name,
                Host.state,
                Host.state_reason,
                Host.state_since,
                Host.maintenance,
                Host.uri,
                Host.memory_mib,
                Host.free_memory_mib,
                Host.virt_type,
                func.coalesce(counts.c.n, 0),
            )
            .outerjoin(Cluster, Host.cluster_id == Cluster.id)
            .outerjoin(counts, counts.c.host_id == Host.id)
        )
        for row in s.execute(q):
            yield ("host", row[0]), (row[1], tuple(row))

    def _vms(self, s: Session) -> Iterator[tuple[Key, tuple[str | None, Raw]]]:
        q = (
            select(
                Vm.name,
                Host.name,
                Cluster.name,
                Vm.state,
                Vm.memory_mib,
                Vm.ha,
                Vm.ha_priority,
                cast(Vm.findings, Text),
            )
            .outerjoin(Host, Vm.host_id == Host.id)
            .outerjoin(Cluster, Host.cluster_id == Cluster.id)
        )
        for row in s.execute(q):
            yield ("vm", row[0]), (row[2], tuple(row))

    def _clusters(
        self, s: Session, now: dict[Key, tuple[str | None, Raw]]
    ) -> dict[Key, tuple[str | None, Raw]]:
        hosts: dict[str, int] = {}
        vms: dict[str, list[int]] = {}
        for (kind, _name), (cluster, row) in now.items():
            if cluster is None:
                continue
            if kind == "host":
                hosts[cluster] = hosts.get(cluster, 0) + 1
            elif kind == "vm":
                n = vms.setdefault(cluster, [0, 0])
                n[0] += 1
                n[1] += row[7] not in ("[]", None) and _unsupported(row[7])
        out: dict[Key, tuple[str | None, Raw]] = {}
        for c in s.scalars(select(Cluster)):
            n = vms.get(c.name, [0, 0])
            row = {
                "name": c.name,
                "reserve": c.reserve,
                "postcopy": c.postcopy,
                "overcommit": c.overcommit or None,
                "hosts": hosts.get(c.name, 0),
                "vms": n[0],
                "unsupported": n[1],
            }
            out[("cluster", c.name)] = (c.name, row)
        return out

    def _jobs(self, s: Session) -> list[tuple[str | None, dict[str, Any]]]:
        """Jobs under way, those that ended since the last read, and new ones."""
        unfinished = Job.state.not_in([str(x) for x in FINAL_JOB_STATES])
        watched = or_(unfinished, Job.id > self._max_job, Job.id.in_(self._active_jobs))
        jobs = list(s.scalars(select(Job).where(watched).order_by(Job.id)))
        host, vm_host = aliased(Host), aliased(Host)
        subjects = {j.subject for j in jobs}
        where: dict[str, str | None] = {}
        if subjects:
            q = select(host.name, Cluster.name).join(Cluster, host.cluster_id == Cluster.id)
            where |= {n: c for n, c in s.execute(q.where(host.name.in_(subjects)))}
            q2 = select(Vm.name, Cluster.name).join(vm_host, Vm.host_id == vm_host.id)
            q2 = q2.join(Cluster, vm_host.cluster_id == Cluster.id).where(Vm.name.in_(subjects))
            where |= {n: c for n, c in s.execute(q2)}
        out, digests = [], {}
        for j in jobs:
            view = job_view(j)
            digests[j.id] = (view["state"], view["phase"], view["percent"], view["progress"])
            if self._job_digests.get(j.id) != digests[j.id]:
                out.append((where.get(j.subject), view))
        self._max_job = max([self._max_job, *digests])
        self._active_jobs = {j.id for j in jobs if j.state not in FINAL_JOB_STATES}
        self._job_digests = digests
        return out
