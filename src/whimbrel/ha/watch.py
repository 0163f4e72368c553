"""When a lost host is failed over: the HA monitor's decision.

The inventory monitor reports every poll of every host here.  A host that
stops answering (its libvirt connection closed, or libvirt's keepalive gave
up on it) is lost from that moment; once it has stayed lost for the grace
period and still holds HA VMs that are down, a ``host.failover`` job is
submitted with what was seen, and again every ``retry_s`` while VMs remain
down (a disk still locked, no capacity yet).  A host that answers again
before the grace period ends is a blip, and nothing happens.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.domain.host import HostState
from whimbrel.domain.job import FINAL_JOB_STATES
from whimbrel.drivers import keeps_own_cluster
from whimbrel.errors import WhimbrelError
from whimbrel.jobs.flows.failover import stranded
from whimbrel.ops import Op, OpHostFailover
from whimbrel.store.models import Host, Job

log = logging.getLogger(__name__)


@dataclass
class Lost:
    since: float  # monotonic time of the first failed poll
    at: str  # wall-clock time of it, for the record
    reason: str
    polls: int = 1
    tried: float = 0.0  # monotonic time of the last failover submitted


class FailoverWatch:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        submit: Callable[[Op], int],
        grace_s: float = 5.0,
        retry_s: float = 15.0,
    ):
        self.sessions, self.submit = sessions, submit
        self.grace_s, self.retry_s = grace_s, retry_s
        self.lost: dict[str, Lost] = {}
        self._lock = threading.Lock()  # hosts are polled from threads of their own

    def seen(self, host: str, state: HostState, reason: str) -> None:
        with self._lock:
            if state == HostState.CONNECTED:
                if self.lost.pop(host, None) is not None:
                    log.warning("host %s answers again", host)
                return
            if host in self.lost:
                self.lost[host].polls += 1
            else:
                self.lost[host] = Lost(time.monotonic(), time.strftime("%H:%M:%S"), reason)

    @staticmethod
    def _evidence(lost: Lost) -> str:
        return (
            f"lost at {lost.at}: {lost.reason}; no answer for "
            f"{time.monotonic() - lost.since:.1f} s over {lost.polls} poll(s)"
        )

    def tick(self) -> list[str]:
        """Submit the failovers that are due; return the hosts they are for."""
        now = time.monotonic()
        with self._lock:
            due = [
                h
                for h, lost in self.lost.items()
                if now - lost.since >= self.grace_s and now - lost.tried >= self.retry_s
            ]
        started = []
        for host in due:
            with self.sessions() as s:
                if not stranded(s, host) or self._running(s, host) or _own_cluster(s, host):
                    continue
            with self._lock:
                lost = self.lost.get(host)
                if lost is None:  # it answered meanwhile
                    continue
                lost.tried = now
                evidence = self._evidence(lost)
            try:
                job = self.submit(OpHostFailover(host, evidence))
            except WhimbrelError as exc:  # the host came back, or nothing is left to do
                log.info("no failover for host %s: %s", host, exc.cause)
                continue
            log.warning("host %s lost: failover job %d (%s)", host, job, evidence)
            started.append(host)
        return started

    @staticmethod
    def _running(s: Session, host: str) -> bool:
        return (
            s.scalar(
                select(Job.id).where(
                    Job.kind == OpHostFailover.kind,
                    Job.subject == host,
                    Job.state.not_in(list(FINAL_JOB_STATES)),
                )
            )
            is not None
        )


def _own_cluster(s: Session, host: str) -> bool:
    """A Hyper-V node's failover cluster restarts its roles itself: Whimbrel does not
    fence or restart there, the monitor follows each role to its new owner."""
    row = s.scalar(select(Host).where(Host.name == host))
    return row is not None and keeps_own_cluster(row.uri)
