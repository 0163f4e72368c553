"""The manager: store, host connections and job runner, assembled once.

``whimbrel serve`` runs one of these behind the REST API; tests build one on
a temporary store with the fake driver.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.config import Settings
from whimbrel.connections import ConnectionPool, Opener
from whimbrel.domain.migration import HostMigration
from whimbrel.drivers import open_host
from whimbrel.ha.watch import FailoverWatch
from whimbrel.jobs.flows import registry
from whimbrel.jobs.runner import JobRunner
from whimbrel.monitor import InventoryMonitor
from whimbrel.store.db import open_store
from whimbrel.store.models import Host
from whimbrel.store.repo import migration_settings


def ensure_token(path: Path) -> str:
    """The API's bearer token, created on first start, readable by its owner only."""
    if path.exists():
        return path.read_text().strip()
    path.parent.mkdir(parents=True, exist_ok=True)
    token = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(token + "\n")
    return token


class Manager:
    def __init__(
        self,
        settings: Settings,
        opener: Opener | None = None,
        workers: int = 16,
        monitor_period_s: float = 5.0,
    ):
        self.settings = settings
        self.sessions: sessionmaker[Session] = open_store(settings.db_url)
        self.token = ensure_token(settings.token_file)
        pki = settings.client_pki_dir
        self.conns = ConnectionPool(self.sessions, opener or (lambda uri: open_host(uri, pki)))
        self.runner = JobRunner(
            self.sessions,
            registry(),
            self.conns,
            workers=workers,
            capacity=self.capacity,
            retention_days=settings.job_retention_days,
        )
        # A poll unanswered for two periods and a bit counts as management silence.
        watch = FailoverWatch(self.sessions, self.runner.submit, 2 * monitor_period_s + 2)
        self.monitor = InventoryMonitor(self.sessions, self.conns, monitor_period_s, watch=watch)

    def capacity(self, lock: str) -> int:
        """A host's migration limits for its slot locks; 1 for every other lock."""
        kind, _, host = lock.partition(":")
        if kind not in ("live-migration", "storage-migration"):
            return 1
        with self.sessions() as s:
            h = s.scalar(select(Host).where(Host.name == host))
            m = migration_settings(h) if h is not None else HostMigration()
        return m.max_live_migrations if kind == "live-migration" else m.max_storage_migrations

    def start(self) -> None:
        self.runner.start()
        self.monitor.start()

    def stop(self) -> None:
        self.monitor.stop()
        self.runner.stop()
        self.conns.close()
        engine = self.sessions.kw.get("bind")
        if engine is not None:  # give the database its connections back
            engine.dispose()
