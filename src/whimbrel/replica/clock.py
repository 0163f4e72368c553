"""The store's clock: the one clock every replica's leases are written in.

Replicas never compare their own clocks with each other: a lease is written and
judged in the database's time, and each replica turns it into a deadline on its
own monotonic clock, counted from before it asked (so that it is always early).
"""

from __future__ import annotations

from sqlalchemy import select, text, update
from sqlalchemy.orm import Session

from whimbrel.store.models import Lease


def store_now(s: Session) -> float:
    """Seconds since the epoch by the store's clock (not the transaction's start)."""
    if s.get_bind().dialect.name == "postgresql":
        q = "SELECT extract(epoch FROM clock_timestamp())::float8"
    else:
        q = "SELECT (julianday('now') - 2440587.5) * 86400.0"
    return float(s.execute(text(q)).scalar_one())


def lock_lease(s: Session, name: str) -> None:
    """Take the row lock of the lease ``name`` as this transaction's first act.

    PostgreSQL locks the row.  SQLite has no row locks: a write as the first
    statement takes the database's write lock at once (waiting its turn), where
    a read first would fail later when the transaction tries to write."""
    if s.get_bind().dialect.name == "postgresql":
        s.execute(select(Lease.name).where(Lease.name == name).with_for_update())
    else:
        s.execute(update(Lease).where(Lease.name == name).values(epoch=Lease.epoch))
