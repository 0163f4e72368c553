"""Keeps the store's view of hosts and VMs true to what the hosts report.

Every few seconds each host is asked for its domains, and at once when the
host pushes a lifecycle event (libvirt's domain events).  Each answer, or its
absence, is the management channel of the failover watch (``ha/watch.py``),
which decides with the storage heartbeat what a silent host is.  A VM its host
no longer knows becomes 'missing'; VMs that a running job holds are left to that
job.  A host that answers again after it was silent is reconciled before it is
marked connected (``ha/reconcile.py``): definitions of VMs that run elsewhere now
are removed from it, never started.

Among replicas only the leader watches; a replica that starts leading forgets what
its watch saw before and judges afresh.

Polls are spread over the period (each host at its own offset), on a bounded
pool of connections, and the answers of connected hosts are written together,
one transaction a tick, not one per host.
"""

from __future__ import annotations

import logging
import threading
import time
import zlib
from collections import defaultdict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.connections import ConnectionPool
from whimbrel.domain.host import HostState
from whimbrel.domain.vm import VmState
from whimbrel.drivers.base import HostDriver
from whimbrel.errors import WhimbrelError
from whimbrel.ha.reconcile import reconcile_returning
from whimbrel.ha.watch import FailoverWatch
from whimbrel.placement.refresh import refresh
from whimbrel.store.models import Host, Vm
from whimbrel.store.repo import apply_domains, busy_vms, follow_moves, set_host_state

log = logging.getLogger(__name__)


class InventoryMonitor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        conns: ConnectionPool,
        period_s: float = 5.0,
        event_check_s: float = 0.25,
        watch: FailoverWatch | None = None,
        leading: Callable[[], bool] = lambda: True,
    ):
        self.sessions = sessions
        self.watch = watch
        self.leading = leading
        self.conns = conns
        self.period_s = period_s
        self.event_check_s = event_check_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.last_pass = time.time()  # of the loop, for /health
        # One thread per host being asked: a host that hangs (cut off, waiting for
        # libvirt's keepalive) delays neither the others nor the failover watch.
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="host-poll")
        self._inflight: set[str] = set()
        self._lock = threading.Lock()
        # host -> (driver, its domains, when it was asked)
        self._answers: dict[str, tuple[HostDriver, dict[str, VmState], datetime]] = {}
        self._due: dict[str, float] = {}  # host -> monotonic time of its next poll

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="inventory-monitor", daemon=True)
        self._thread.start()

    def stop_loop(self) -> None:
        """Stop the periodic loop; polls and ticks asked for still work (tests drive them)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)

    def stop(self) -> None:
        self.stop_loop()
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        next_full = time.monotonic() + self.period_s
        led = False
        while not self._stop.wait(self.event_check_s):
            try:
                if not self.leading():
                    led = False
                    self.last_pass = time.time()
                    continue
                if not led:  # a new term: judge afresh, starting with a full poll
                    led, next_full = True, time.monotonic()
                    self._due.clear()
                    if self.watch is not None:
                        self.watch.reset()
                if time.monotonic() >= next_full:  # the fleet read again once a period
                    next_full = time.monotonic() + self.period_s
                    self._schedule_polls()
                self.poll_once(self._take_due(), wait=False)
                self.poll_events(wait=False)
                self._flush()
                if self.watch is not None:
                    self.watch.tick()
                self.last_pass = time.time()
            except Exception:  # the monitor must outlive any one bad answer
                log.exception("inventory poll failed")

    def _schedule_polls(self) -> None:
        """Give each host its time in the coming period, spread evenly by name."""
        with self.sessions() as s:
            names = list(s.scalars(select(Host.name)))
        now = time.monotonic()
        due = {}
        for n in names:
            offset = (zlib.crc32(n.encode()) % 1000) / 1000 * self.period_s
            due[n] = self._due.get(n, now + offset)
        self._due = due

    def _take_due(self) -> set[str]:
        now = time.monotonic()
        ready = {n for n, t in self._due.items() if t <= now}
        for n in ready:
            self._due[n] += self.period_s
            if self._due[n] < now:  # fell behind (a slow pass): from now on
                self._due[n] = now + self.period_s
        return ready

    def poll_events(self, wait: bool = True) -> int:
        """Re-read at once the hosts that pushed events; return how many did."""
        changed = {uri for uri, drv in self.conns.open_now() if drv.events()}
        if changed:
            with self.sessions() as s:
                names = set(s.scalars(select(Host.name).where(Host.uri.in_(changed))))
            self.poll_once(names, wait)
        return len(changed)

    def poll_once(self, only: set[str] | None = None, wait: bool = True) -> None:
        """Ask every host (or the hosts named in ``only``) for its domains, all at once.

        ``wait=False`` (the monitor's own loop) returns at once and skips a host
        whose previous answer is still awaited; the answers are written at its
        next tick."""
        if only is not None and not only:
            return
        with self.sessions() as s:
            q = select(Host.name, Host.uri)
            if only is not None and len(only) < 500:
                q = q.where(Host.name.in_(only))
            hosts = s.execute(q).all()
        futures = []
        for name, uri in hosts:
            if only is not None and name not in only:
                continue
            if not wait:
                with self._lock:
                    if name in self._inflight:
                        continue
                    self._inflight.add(name)
            futures.append(self._pool.submit(self._poll_host, name, uri, not wait))
        for f in futures if wait else ():
            f.result()
        if wait:
            self._flush()

    def _poll_host(self, name: str, uri: str, tracked: bool) -> None:
        try:
            asked = datetime.now(UTC)  # a job that ends after this has the last word
            try:
                drv = self.conns.for_uri(uri)
                found = drv.list_domains()
            except WhimbrelError as exc:
                self.conns.drop(uri)
                self._silent(name, f"{exc.cause} ({exc.detail})"[:500])
                return
            if self.watch is not None:  # before the state: the watch must not overwrite it
                self.watch.seen(name, True)
            with self._lock:
                self._answers[name] = (drv, {d.name: d.state for d in found}, asked)
        except Exception:  # a poller thread must not die silently
            log.exception("poll of host %s failed", name)
            if not tracked:
                raise
        finally:
            if tracked:
                with self._lock:
                    self._inflight.discard(name)

    def _silent(self, host: str, reason: str) -> None:
        with self.sessions.begin() as s:
            row = s.scalar(select(Host).where(Host.name == host))
            if row is None:
                return
            if row.state == HostState.CONNECTED:  # the watch refines it from here on
                set_host_state(row, HostState.NOT_RESPONDING, f"management: {reason}")
                log.warning("host %s does not answer: %s", host, reason)
                apply_domains(s, row, None, busy_vms(s))
                if row.cluster is not None:  # a node failed: the reserve is recomputed
                    refresh(s, f"node {host} failed", row.cluster.name)
        if self.watch is not None:
            self.watch.seen(host, False, reason)

    def _flush(self) -> None:
        """Write the answers of connected hosts in one transaction; a host back from
        silence is reconciled on its own first (``_returned``)."""
        with self._lock:
            batch, self._answers = self._answers, {}
        if not batch:
            return
        back: list[tuple[str, str]] = []
        with self.sessions.begin() as s:
            # A VM a job changed after the oldest of these answers was asked for is
            # left to the next poll: the answer may predate the change.
            busy = busy_vms(s, min(asked for _, _, asked in batch.values()))
            rows = {h.name: h for h in _chunked(s, Host, Host.name, list(batch))}
            ids = [h.id for h in rows.values() if h.state == HostState.CONNECTED]
            placed: dict[int | None, list[Vm]] = defaultdict(list)
            for vm in _chunked(s, Vm, Vm.host_id, ids):
                placed[vm.host_id].append(vm)
            running = [n for _, d, _ in batch.values() for n, st in d.items() if st == "running"]
            by_name = {v.name: v for v in _chunked(s, Vm, Vm.name, running)}
            for name, (_, domains, _) in batch.items():
                row = rows.get(name)
                if row is None:
                    continue
                if row.state != HostState.CONNECTED:
                    back.append((name, row.state))
                    continue
                for vm, old, now in apply_domains(s, row, domains, busy, placed[row.id]):
                    log.info("VM %s on %s: %s -> %s", vm, name, old, now)
                for vm, old in follow_moves(s, row, domains, busy, by_name):
                    log.warning("VM %s runs on %s now, not on %s: recorded", vm, name, old)
        for name, was in back:
            drv, domains, asked = batch[name]
            self._returned(name, drv, domains, was, asked)

    def _returned(
        self, host: str, drv: HostDriver, domains: dict[str, VmState], was: str, asked: datetime
    ) -> None:
        domains = reconcile_returning(self.sessions, host, drv, domains, was)
        with self.sessions.begin() as s:
            row = s.scalar(select(Host).where(Host.name == host))
            if row is None:
                return
            changed = set_host_state(row, HostState.CONNECTED, "")
            if changed:
                log.warning("host %s answers again (was %s)", host, was)
            busy = busy_vms(s, asked)
            for vm, old, now in apply_domains(s, row, domains, busy):
                log.info("VM %s on %s: %s -> %s", vm, host, old, now)
            for vm, old in follow_moves(s, row, domains, busy):
                log.warning("VM %s runs on %s now, not on %s: recorded", vm, host, old)
            if changed and row.cluster is not None:  # a node came back: likewise
                refresh(s, f"node {host} back", row.cluster.name)


def _chunked(s: Session, model: Any, column: Any, keys: list[Any]) -> list[Any]:
    """Rows of ``model`` whose ``column`` is in ``keys``, read 5,000 keys at a time
    (the stores' bound parameters are limited)."""
    out: list[Any] = []
    for i in range(0, len(keys), 5000):
        out.extend(s.scalars(select(model).where(column.in_(keys[i : i + 5000]))))
    return out
