"""The manager: store, host connections and job runner, assembled once.

``whimbrel serve`` runs one of these behind the REST API; tests build one on
a temporary store with the fake driver.  Several may share one PostgreSQL store
as replicas (:mod:`whimbrel.replica.member`): each serves the API and runs jobs;
the leader alone watches the hosts.  On SQLite only one may run.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as Unanswered

from sqlalchemy import Engine, select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.access.audit import Record, append
from whimbrel.access.policy import Principal
from whimbrel.access.tokens import RecentlyVerified, authenticate, refused
from whimbrel.access.users import bootstrap
from whimbrel.access.vault import Vault, seal_stored
from whimbrel.config import Settings
from whimbrel.connections import ConnectionPool, Opener
from whimbrel.domain.migration import HostMigration
from whimbrel.drivers import open_host
from whimbrel.ha.watch import FailoverWatch
from whimbrel.jobs.flows import registry
from whimbrel.jobs.runner import JobRunner
from whimbrel.monitor import InventoryMonitor
from whimbrel.ops import Op, OpHostFailover
from whimbrel.replica.member import Membership
from whimbrel.replica.single import SqliteGuard, sqlite_path
from whimbrel.store.db import open_store, side_sessions
from whimbrel.store.models import Host
from whimbrel.store.repo import migration_settings

log = logging.getLogger(__name__)

# A token check the store has not answered in this time is judged as if the store
# were out of reach.  A frozen server, or a link whose far end still acknowledges
# (a proxy, a stopped process), never fails a call already sent: only a deadline ends it.
TOKEN_CHECK_S = 5.0


class Manager:
    def __init__(
        self,
        settings: Settings,
        opener: Opener | None = None,
        workers: int = 16,
        monitor_period_s: float = 5.0,
        name: str = "",
        url: str = "",
        first_password_file: str = "",
    ):
        self.settings = settings
        self.sessions: sessionmaker[Session] = open_store(settings.db_url)
        self._engine: Engine = self.sessions.kw["bind"]
        self._verified = RecentlyVerified()
        self._token_checks = ThreadPoolExecutor(8, thread_name_prefix="token-check")
        self._store_silent: tuple[float, Exception] = (0.0, Exception())
        # On a store without users: 'admin', whose password (if made here) serve prints once.
        self.first_user_made, self.first_password = bootstrap(
            self.sessions, settings.token_file, first_password_file
        )
        token_file = settings.token_file
        self.token = token_file.read_text().strip() if token_file.exists() else ""
        pki = settings.client_pki_dir
        self.vault = Vault(settings.secret_key_file)
        with self.sessions.begin() as s:
            seal_stored(s, self.vault)  # credentials stored in clear by an older Whimbrel
        opener = opener or (lambda uri: open_host(uri, pki))
        self.conns = ConnectionPool(self.sessions, opener, self.vault)
        db_file = sqlite_path(settings.db_url)
        self._guard = SqliteGuard(db_file) if db_file is not None else None
        name = name or f"{socket.gethostname()}:{os.getpid()}"
        lease = settings.replica_lease_s
        single = not settings.db_url.startswith("postgresql")
        self.membership = Membership(
            side_sessions(settings.db_url, idle_s=lease),
            name,
            url,
            lease,
            self._jobs,
            self._takeover,
            exclusive=single,
        )
        self.runner = JobRunner(
            self.sessions,
            registry(),
            self.conns,
            workers=workers,
            capacity=self.capacity,
            retention_days=settings.job_retention_days,
            me=name,
            lease_s=lease,
            leading=self.membership.leading,
            single=single,
        )
        # A poll unanswered for two periods and a bit counts as management silence.
        watch = FailoverWatch(self.sessions, self._submit_as_leader, 2 * monitor_period_s + 2)
        self.monitor = InventoryMonitor(
            self.sessions,
            self.conns,
            monitor_period_s,
            watch=watch,
            leading=self.membership.leading,
        )

    def authenticate(self, token: str) -> Principal:
        """The user of an API request's token (the API's guard asks, per request)."""
        if not token:
            raise refused(str(self.settings.token_file))
        seen = self._verified.fresh(token)
        if seen is not None:
            return seen
        if time.monotonic() < self._store_silent[0]:  # asked moments ago, in vain
            return self._verified.recall(token, self._store_silent[1])
        check = self._token_checks.submit(self._check_token, token)
        try:
            p = check.result(timeout=TOKEN_CHECK_S)
        except DBAPIError as exc:  # the store is out of reach, not the token wrong
            return self._recall_silent(token, exc)
        except Unanswered:
            silent = TimeoutError(f"the store did not answer a token check in {TOKEN_CHECK_S:g} s")
            return self._recall_silent(token, silent)
        self._verified.keep(token, p)
        return p

    def _recall_silent(self, token: str, cause: Exception) -> Principal:
        """For the next few seconds, checks are not sent to a store that just failed one:
        a burst of requests would queue behind the deadline, one after another."""
        self._store_silent = (time.monotonic() + TOKEN_CHECK_S, cause)
        return self._verified.recall(token, cause)

    def _check_token(self, token: str) -> Principal:
        with self._engine.connect() as c:
            return authenticate(c, token, str(self.settings.token_file))

    def recently_verified(self, token: str) -> Principal | None:
        """The guard's first look, without a store read or a thread (access/tokens.py)."""
        return self._verified.fresh(token) if token else None

    def access_changed(self) -> None:
        """A token revoked, a grant or a user changed: check every token again."""
        self._verified.forget()

    def audit(self, record: Record, source: str, method: str, path: str, status: int) -> None:
        """Append a request to the audit trail; a store that fails it is logged, since
        the request itself has been answered."""
        try:
            with self.sessions.begin() as s:
                append(s, record, source, method, path, status)
        except Exception:
            log.exception("audit entry lost: %s %s by %r (%d)", method, path, record.user, status)

    def _jobs(self) -> list[int]:
        return self.runner.running()

    def _takeover(self) -> None:
        self.runner.recover()

    def _submit_as_leader(self, op: Op) -> int:
        """The watch's failovers: stamped with the leader's epoch, and refused in the
        same transaction if this replica no longer leads at that epoch."""
        if isinstance(op, OpHostFailover):
            op = dataclasses.replace(op, epoch=self.membership.epoch)
        return self.runner.submit(op, guard=self.membership.check_leader)

    @staticmethod
    def capacity(s: Session, locks: set[str]) -> dict[str, int]:
        """Hosts' migration limits for their slot locks, 1 for every other lock; read in
        the scheduler's own transaction (a second connection, asked for while that one
        holds SQLite's write lock, could wait on a pool whose connections wait on it)."""
        slots = {"live-migration", "storage-migration"}
        named = {lk.partition(":")[2] for lk in locks if lk.partition(":")[0] in slots}
        hosts = {h.name: h for h in s.scalars(select(Host).where(Host.name.in_(named)))}
        out = {}
        for lk in locks:
            kind, _, name = lk.partition(":")
            if kind not in slots:
                out[lk] = 1
                continue
            h = hosts.get(name)
            m = migration_settings(h) if h is not None else HostMigration()
            live = kind == "live-migration"
            out[lk] = m.max_live_migrations if live else m.max_storage_migrations
        return out

    def start(self) -> None:
        if self._guard is not None:
            self._guard.take(self.membership.name)
        self.membership.join()
        self.runner.start()
        self.membership.start()
        self.monitor.start()

    def stop(self) -> None:
        self.monitor.stop()
        self.runner.stop()
        self.membership.stop()
        self.conns.close()
        self._token_checks.shutdown(wait=False, cancel_futures=True)
        if self._guard is not None:
            self._guard.release()
        engine = self.sessions.kw.get("bind")
        if engine is not None:  # give the database its connections back
            engine.dispose()
