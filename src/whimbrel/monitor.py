"""Keeps the store's view of hosts and VMs true to what the hosts report.

Every few seconds each host is asked for its domains, and at once when the
host pushes a lifecycle event (libvirt's domain events); a host that does not
answer is marked unreachable (with libvirt's reason) and its VMs 'unknown', a
VM its host no longer knows becomes 'missing'.  VMs that a running job holds
are left to that job.  The HA monitor of a later release builds on this.
"""

from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.connections import ConnectionPool
from whimbrel.domain.host import HostState
from whimbrel.domain.vm import VmState
from whimbrel.errors import WhimbrelError
from whimbrel.ha.watch import FailoverWatch
from whimbrel.placement.refresh import refresh
from whimbrel.store.models import Host
from whimbrel.store.repo import apply_domains, busy_vms, follow_moves

log = logging.getLogger(__name__)


class InventoryMonitor:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        conns: ConnectionPool,
        period_s: float = 5.0,
        event_check_s: float = 0.25,
        watch: FailoverWatch | None = None,
    ):
        self.sessions = sessions
        self.watch = watch
        self.conns = conns
        self.period_s = period_s
        self.event_check_s = event_check_s
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # One thread per host being asked: a host that hangs (cut off, waiting for
        # libvirt's keepalive) delays neither the others nor the failover watch.
        self._pool = ThreadPoolExecutor(max_workers=16, thread_name_prefix="host-poll")
        self._inflight: set[str] = set()
        self._lock = threading.Lock()

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="inventory-monitor", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._pool.shutdown(wait=False, cancel_futures=True)

    def _loop(self) -> None:
        next_full = time.monotonic() + self.period_s
        while not self._stop.wait(self.event_check_s):
            try:
                if time.monotonic() >= next_full:
                    next_full = time.monotonic() + self.period_s
                    self.poll_once(wait=False)
                else:
                    self.poll_events(wait=False)
                if self.watch is not None:
                    self.watch.tick()
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
                domains = {d.name: d.state for d in self.conns.for_uri(uri).list_domains()}
            except WhimbrelError as exc:
                self.conns.drop(uri)
                reason = f"{exc.cause} ({exc.detail})"[:500]
                self._mark(name, HostState.UNREACHABLE, reason, None)
                return
            self._mark(name, HostState.CONNECTED, "", domains)
        except Exception:  # a poller thread must not die silently
            log.exception("poll of host %s failed", name)
            if not tracked:
                raise
        finally:
            if tracked:
                with self._lock:
                    self._inflight.discard(name)

    def _mark(
        self, host: str, state: HostState, reason: str, domains: dict[str, VmState] | None
    ) -> None:
        with self.sessions.begin() as s:
            row = s.scalar(select(Host).where(Host.name == host))
            if row is None:
                return
            changed = row.state != state
            if changed:
                log.warning("host %s is now %s %s", host, state, reason)
            row.state, row.state_reason = state, reason
            busy = busy_vms(s)
            for vm, was, now in apply_domains(s, row, domains, busy):
                log.info("VM %s on %s: %s -> %s", vm, host, was, now)
            for vm, was in follow_moves(s, row, domains, busy):
                log.warning("VM %s runs on %s now, not on %s: recorded", vm, host, was)
            if changed and row.cluster is not None:  # seed 004: a node failed or came back
                event = f"node {host} {'back' if domains is not None else 'failed'}"
                refresh(s, event, row.cluster.name)
        if self.watch is not None:
            self.watch.seen(host, state, reason)
