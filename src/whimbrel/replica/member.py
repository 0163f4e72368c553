"""One manager among replicas: its membership lease, and the leader's lease.

Every replica renews, every ``ttl/5`` seconds and in one transaction:

* its own row in ``replicas`` (so ``whimbrel manager list`` shows who is alive);
* the lease of each job it runs (another replica takes over a job whose lease
  ran out: :mod:`whimbrel.replica.claims`);
* the leader's lease, or tries to take it when it ran out.  Each new leader gets
  the next **epoch**; a failover is submitted only in a transaction that finds
  the leader's row still at the submitter's epoch.

The leader alone runs the inventory monitor, the failover watch and the janitor.
It counts its term from *before* it asked for the renewal, on its own monotonic
clock, minus a margin, while the store counts it from when it answered: so a
leader cut off from the store stops acting before the store lets anyone else
lead, whatever the two clocks say.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.domain.job import FINAL_JOB_STATES
from whimbrel.errors import Conflict, WrongState
from whimbrel.replica.clock import lock_lease, store_now
from whimbrel.store.models import Job, Lease, Replica

log = logging.getLogger(__name__)
LEASE_S = 10.0
MARGIN_S = 1.0  # how much earlier than the store a replica gives up its leases


@dataclass
class Term:
    """One stretch of leadership, in wall-clock seconds (for the API and the proofs)."""

    epoch: int
    began: float
    until: float  # the local deadline; moves on with each renewal
    ended: str = ""  # why it ended ("" while it lasts)

    def to_dict(self) -> dict[str, Any]:
        return {"epoch": self.epoch, "began": self.began, "until": self.until, "ended": self.ended}


class Membership:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        name: str,
        url: str,
        ttl_s: float = LEASE_S,
        jobs: Callable[[], list[int]] = list,
        takeover: Callable[[], object] | None = None,
        exclusive: bool = False,
    ) -> None:
        self.sessions, self.name, self.url = sessions, name, url
        self.ttl_s, self.renew_s = ttl_s, ttl_s / 5
        self.instance = uuid.uuid4().hex[:16]
        self._jobs, self._takeover = jobs, takeover
        # ``exclusive``: no other manager can use the store (SQLite, held by a kernel
        # lock): this one leads from join to stop, whatever a busy store delays.
        self.exclusive = exclusive
        self._joined = False
        self.epoch = 0
        self.terms: list[Term] = []
        self._terms_lock = threading.Lock()
        self._valid_until = 0.0  # monotonic deadlines
        self._lead_until = 0.0
        self.last_pass = time.time()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # -- what this replica may do now (no database access: a cut link must not block it)

    def holding(self) -> bool:
        """Whether this replica's own lease (and its jobs') still holds by its clock."""
        return (self.exclusive and self._joined) or time.monotonic() < self._valid_until

    def leading(self) -> bool:
        return (self.exclusive and self._joined) or time.monotonic() < self._lead_until

    def state(self) -> dict[str, Any]:
        if not self.leading():  # the renewing thread may be stuck on a store out of reach
            self._end_term("its lease lapsed: the store did not answer in time")
        return {
            "name": self.name,
            "instance": self.instance,
            "leader": self.leading(),
            "holding": self.holding(),
            "epoch": self.epoch if self.leading() else None,
            "terms": [t.to_dict() for t in self.terms[-20:]],
        }

    # -- life cycle ---------------------------------------------------------

    def join(self) -> None:
        """Register; a previous process of the same name is waited out (it may be alive)."""
        deadline = time.monotonic() + self.ttl_s + 2 * MARGIN_S
        while True:
            other = self._register()
            if other is None:
                break
            if time.monotonic() > deadline:
                raise Conflict(
                    "E_REPLICA_NAME_IN_USE",
                    f"the replica name {self.name!r} is in use by a running manager ({other})",
                    "give this replica a name of its own with 'whimbrel serve --replica-name "
                    "NAME', or stop the other one",
                )
            log.warning("replica %s: waiting for the lease of %s to run out", self.name, other)
            time.sleep(0.5)
        self.renew()
        self._joined = True

    def _register(self) -> str | None:
        t0 = time.monotonic()
        with self.sessions.begin() as s:
            lock_lease(s, "leader")
            now = store_now(s)
            row = s.get(Replica, self.name, with_for_update=True)
            taken = row is not None and not row.stopped and row.instance != self.instance
            if row is not None and taken and row.lease_until > now:
                return f"pid {row.pid} on {row.machine}, seen {now - row.seen_at:.1f} s ago"
            if row is None:
                row = Replica(name=self.name)
                s.add(row)
            row.instance, row.url, row.pid = self.instance, self.url, os.getpid()
            row.machine, row.started_at, row.seen_at = socket.gethostname(), now, now
            row.lease_until, row.stopped = now + self.ttl_s, False
        self._valid_until = t0 + self.ttl_s - MARGIN_S
        return None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="replica-lease", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Leave: the leader's lease is handed back at once, the rest runs out."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(10)
        self._end_term("stopped")
        self._lead_until = self._valid_until = 0.0
        self._joined = False
        try:
            with self.sessions.begin() as s:
                now = store_now(s)
                s.execute(
                    update(Lease)
                    .where(Lease.name == "leader", Lease.instance == self.instance)
                    .values(expires_at=now)
                )
                s.execute(
                    update(Replica)
                    .where(Replica.name == self.name, Replica.instance == self.instance)
                    .values(stopped=True, lease_until=now)
                )
        except Exception:  # a store that is away: the leases run out by themselves
            log.exception("replica %s: could not hand its leases back", self.name)

    def _loop(self) -> None:
        while not self._stop.wait(self.renew_s):
            try:
                self.renew()
                if self._takeover is not None and self.holding():
                    self._takeover()
                self.last_pass = time.time()
            except Exception:  # the store away: the leases lapse by the clock, not here
                log.exception("replica %s: lease renewal failed", self.name)
            if not self.leading():
                self._end_term("its lease lapsed: the store did not answer in time")

    # -- one renewal -----------------------------------------------------------

    def renew(self) -> None:
        ids = self._jobs()  # before the transaction: never wait for the runner inside one
        t0 = time.monotonic()
        with self.sessions.begin() as s:
            lock_lease(s, "leader")
            now = store_now(s)
            row = s.get(Replica, self.name, with_for_update=True)
            if row is None or row.instance != self.instance:
                self._lead_until = self._valid_until = 0.0
                raise WrongState(
                    "E_REPLICA_REPLACED",
                    f"another process registered as replica {self.name!r}",
                    "give each replica its own --replica-name",
                )
            row.seen_at, row.lease_until = now, now + self.ttl_s
            if ids:
                s.execute(
                    update(Job)
                    .where(Job.id.in_(ids), Job.owner == self.name)
                    .values(lease_until=now + self.ttl_s)
                )
            epoch = self._lead(s, now)
        self._valid_until = t0 + self.ttl_s - MARGIN_S
        if epoch is None:
            self._lead_until = 0.0
            self._end_term("another replica leads")
            return
        self._lead_until = self._valid_until
        until = time.time() + (self._lead_until - time.monotonic())
        if self.terms and self.terms[-1].epoch == epoch and not self.terms[-1].ended:
            self.terms[-1].until = until
            return
        self._end_term("its lease lapsed: the store did not answer in time")
        self.epoch = epoch
        self.terms.append(Term(epoch, time.time(), until))
        log.warning("replica %s leads from now on (epoch %d)", self.name, epoch)

    def _lead(self, s: Session, now: float) -> int | None:
        """Renew or take the leader's lease; the epoch held, or None."""
        lease = s.get_one(Lease, "leader", with_for_update=True)
        mine = lease.instance == self.instance and lease.epoch == self.epoch
        # Exclusive: no other manager can reach the store, so a lease that ran out while
        # the store was busy is still this one's term, not a new one.
        if mine and (lease.expires_at > now or self.exclusive):
            lease.expires_at = now + self.ttl_s
            return lease.epoch
        if lease.expires_at > now:
            return None
        # Free, or run out (ours too: a term that lapsed is never resumed, a new one begins).
        lease.epoch += 1
        lease.holder, lease.instance = self.name, self.instance
        lease.acquired_at, lease.expires_at = now, now + self.ttl_s
        return lease.epoch

    def _end_term(self, why: str) -> None:
        with self._terms_lock:
            self._end_term_locked(why)

    def _end_term_locked(self, why: str) -> None:
        if self.terms and not self.terms[-1].ended:
            term = self.terms[-1]
            term.until = min(term.until, time.time())
            term.ended = why
            log.warning("replica %s stops leading (epoch %d): %s", self.name, term.epoch, why)

    # -- checks made inside other transactions --------------------------------------

    def check_leader(self, s: Session) -> None:
        """Raise unless this replica still leads at its epoch (locks the leader's row)."""
        lock_lease(s, "leader")
        lease = s.get_one(Lease, "leader")
        if not self.leading() or lease.instance != self.instance or lease.epoch != self.epoch:
            raise WrongState(
                "E_NOT_LEADER",
                f"replica {self.name} no longer leads (epoch {self.epoch}; the store says "
                f"{lease.holder or 'nobody'} at epoch {lease.epoch})",
                "nothing to do: the leader decides again",
            )


def replicas(s: Session) -> list[dict[str, Any]]:
    """Every replica the store knows, the leader marked, as ``manager list`` shows them."""
    now = store_now(s)
    lease = s.get_one(Lease, "leader")
    running = dict(
        s.execute(
            select(Job.owner, func.count())
            .where(Job.owner.is_not(None), Job.state.not_in(list(FINAL_JOB_STATES)))
            .group_by(Job.owner)
        ).all()
    )
    out = []
    for r in s.scalars(select(Replica).order_by(Replica.name)):
        alive = not r.stopped and r.lease_until > now
        leads = alive and lease.instance == r.instance and lease.expires_at > now
        out.append(
            {
                "name": r.name,
                "url": r.url,
                "pid": r.pid,
                "machine": r.machine,
                "state": "leader"
                if leads
                else "alive"
                if alive
                else "stopped"
                if r.stopped
                else "lost",
                "epoch": lease.epoch if leads else None,
                "seen_s_ago": round(now - r.seen_at, 1),
                "up_s": round(now - r.started_at, 1),
                "jobs": int(running.get(r.name, 0)),
            }
        )
    return out
