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
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

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
from whimbrel.store.models import Host
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
                    if self.watch is not None:
                        self.watch.reset()
                if time.monotonic() >= next_full:
                    next_full = time.monotonic() + self.period_s
                    self.poll_once(wait=False)
                else:
                    self.poll_events(wait=False)
                if self.watch is not None:
                    self.watch.tick()
                self.last_pass = time.time()
            except Exception:  # the monitor must outlive any one bad answer
                log.exception("inventory poll failed")

    def poll_events(self, wait: bool = True) -> int:
        """Re-read at once the hosts that pushed events; return how many did."""
        changed = {uri for uri, drv in self.conns.open_now() if drv.events()}
        if changed:
            self.poll_once(changed, wait)
        return len(changed)

    def poll_once(self, only: set[str] | None = None, wait: bool = True) -> None:
        """Ask every host (or the URIs in ``only``) for its domains, all at once.

        ``wait=False`` (the monitor's own loop) returns at once and skips a host
        whose previous answer is still awaited."""
        with self.sessions() as s:
            hosts = [(h.name, h.uri) for h in s.scalars(select(Host))]
        futures = []
        for name, uri in hosts:
            if only is not None and uri not in only:
                continue
            if not wait:
                with self._lock:
                    if name in self._inflight:
                        continue
                    self._inflight.add(name)
            futures.append(self._pool.submit(self._poll_host, name, uri, not wait))
        for f in futures if wait else ():
            f.result()

    def _poll_host(self, name: str, uri: str, tracked: bool) -> None:
        try:
            try:
                drv = self.conns.for_uri(uri)
                found = drv.list_domains()
            except WhimbrelError as exc:
                self.conns.drop(uri)
                self._silent(name, f"{exc.cause} ({exc.detail})"[:500])
                return
            self._answered(name, drv, {d.name: d.state for d in found})
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
                if row.cluster is not None:  # seed 004: a node failed
                    refresh(s, f"node {host} failed", row.cluster.name)
        if self.watch is not None:
            self.watch.seen(host, False, reason)

    def _answered(self, host: str, drv: HostDriver, domains: dict[str, VmState]) -> None:
        with self.sessions() as s:
            row = s.scalar(select(Host).where(Host.name == host))
            was = row.state if row is not None else HostState.CONNECTED
        if was != HostState.CONNECTED:  # back from silence: clean up before it takes VMs
            domains = reconcile_returning(self.sessions, host, drv, domains, was)
        if self.watch is not None:  # before the state: the watch must not overwrite it
            self.watch.seen(host, True)
        with self.sessions.begin() as s:
            row = s.scalar(select(Host).where(Host.name == host))
            if row is None:
                return
            changed = set_host_state(row, HostState.CONNECTED, "")
            if changed:
                log.warning("host %s answers again (was %s)", host, was)
            busy = busy_vms(s)
            for vm, old, now in apply_domains(s, row, domains, busy):
                log.info("VM %s on %s: %s -> %s", vm, host, old, now)
            for vm, old in follow_moves(s, row, domains, busy):
                log.warning("VM %s runs on %s now, not on %s: recorded", vm, host, old)
            if changed and row.cluster is not None:  # seed 004: a node came back
                refresh(s, f"node {host} back", row.cluster.name)
