"""Engine and sessions: SQLite (WAL) by default, PostgreSQL by URL; schema by Alembic."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import Engine, create_engine, event
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.errors import InvalidInput
from whimbrel.store.writers import shared_gate

MIGRATIONS = Path(__file__).parent / "migrations"
BUSY_S = 10.0  # how long a SQLite writer waits for another
# How long PostgreSQL lets a transaction wait for its client before it ends it (and
# frees its row locks).  A manager frozen, or cut off behind a link whose far end
# still acknowledges, mid-transaction is never noticed by the server's TCP; without
# this its locks (the leader's lease among them) would be held for as long as it is.
# No transaction of Whimbrel's waits on anything but the store.
IDLE_IN_TRANSACTION_S = 60.0


def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the CLI's reads and the runner's writes proceed together.
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute(f"PRAGMA busy_timeout={int(BUSY_S * 1000)}")
    cur.close()


def private_file(path: Path) -> None:
    """The store holds host and fence credentials: its directory 0700 when Whimbrel makes
    it, the file 0600 (SQLite gives its -wal and -shm files the same mode)."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o600))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)


def make_engine(url: str, connections: int = 0, idle_s: float = IDLE_IN_TRANSACTION_S) -> Engine:
    """The store's engine; ``connections``: a small pool of that size, for a loop that
    must not queue behind the job workers (0: the pool of the API and the workers);
    ``idle_s``: PostgreSQL ends a transaction whose client is silent that long."""
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        pool: dict[str, int] = {}
        if path and path != ":memory:":
            private_file(Path(path))
            # A connection for each job worker, the API's threads and the manager's loops.
            pool = {"pool_size": connections or 24, "max_overflow": 0 if connections else 24}
        engine = create_engine(url, connect_args={"check_same_thread": False}, **pool)
        event.listen(engine, "connect", _sqlite_pragmas)
        shared_gate(str(Path(path).resolve()) if pool else url, BUSY_S).install(engine)
        return engine
    if url.startswith("postgresql"):
        # A link to the store that goes silent must fail a call in seconds, not hang
        # it for the kernel's TCP timeout (minutes): replicas judge leases by it.
        tcp = {
            "connect_timeout": 5,
            "keepalives": 1,
            "keepalives_idle": 5,
            "keepalives_interval": 2,
            "keepalives_count": 3,
            "tcp_user_timeout": 10000,
            "options": f"-c idle_in_transaction_session_timeout={int(idle_s * 1000)}",
        }
        # 10 + 20 a replica (and 2 for its lease): three stay within PostgreSQL's 100.
        size, overflow = (connections, 0) if connections else (10, 20)
        return create_engine(
            url, pool_pre_ping=True, connect_args=tcp, pool_size=size, max_overflow=overflow
        )
    raise InvalidInput(
        "E_INVALID_DB_URL",
        f"database URL {url!r} is neither SQLite nor PostgreSQL",
        "set WHIMBREL_DB_URL to sqlite:///PATH or postgresql+psycopg://USER@HOST/DB",
    )


def alembic_config(_engine: Engine) -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def upgrade(engine: Engine) -> None:
    """Bring the schema to the newest Alembic revision (first start included)."""
    cfg = alembic_config(engine)
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "head")


def side_sessions(
    url: str, connections: int = 2, idle_s: float = IDLE_IN_TRANSACTION_S
) -> sessionmaker[Session]:
    """Sessions on a pool of their own: the replica's lease renewal must never wait for
    a connection behind a burst of jobs (its lease would lapse, and the fleet lose its
    leader for a term).  The renewal holds the leader's row lock: given the lease as
    ``idle_s``, a renewal frozen halfway holds it no longer than the lease itself."""
    return sessionmaker(make_engine(url, connections, idle_s), expire_on_commit=False)


def open_store(url: str) -> sessionmaker[Session]:
    engine = make_engine(url)
    upgrade(engine)
    return sessionmaker(engine, expire_on_commit=False)
