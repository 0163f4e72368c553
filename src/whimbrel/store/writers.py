"""One SQLite writer at a time within this process, handed over at once.

SQLite lets one connection write at a time.  A writer that finds the lock taken
sleeps in its busy handler, in steps that grow to 100 ms however soon the lock
is freed: with a few dozen job threads writing, most of a job's time went to
those sleeps (and a burst of them ran past the busy timeout).  Writers of this
process therefore queue on a lock of their own, taken right before the first
statement that writes (where SQLite would take its write lock) and given back
at commit or rollback; the next one wakes the moment it is free.  Between
processes SQLite's own lock still rules.
"""

from __future__ import annotations

import logging
import re
import threading
import weakref
from typing import Any

from sqlalchemy import Engine, event

log = logging.getLogger(__name__)
_WRITES = re.compile(r"\s*(INSERT|UPDATE|DELETE|REPLACE)\b", re.IGNORECASE)
KEY = "whimbrel_writer"
_GATES: weakref.WeakKeyDictionary[Engine, WriterGate] = weakref.WeakKeyDictionary()


_SHARED: dict[str, WriterGate] = {}
_SHARED_LOCK = threading.Lock()


def gate_of(engine: Engine) -> WriterGate | None:
    return _GATES.get(engine)


def shared_gate(database: str, wait_s: float) -> WriterGate:
    """The one gate of a database file in this process, whichever engine writes to it."""
    with _SHARED_LOCK:
        return _SHARED.setdefault(database, WriterGate(wait_s))


class WriterGate:
    def __init__(self, wait_s: float) -> None:
        # Past ``wait_s`` a writer goes on without the gate, and SQLite's busy timeout
        # decides (a connection that never commits must not stop every other writer).
        self.wait_s = wait_s
        self._lock = threading.Lock()

    def locked(self) -> bool:
        return self._lock.locked()

    def install(self, engine: Engine) -> None:
        _GATES[engine] = self
        event.listen(engine, "before_cursor_execute", self._before)
        event.listen(engine, "commit", self._ended)
        event.listen(engine, "rollback", self._ended)
        event.listen(engine.pool, "reset", self._reset)
        for what in ("checkin", "invalidate", "close"):
            event.listen(engine.pool, what, self._pooled)

    def _before(self, conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        info = conn.connection.info
        if info.get(KEY) or not _WRITES.match(statement):
            return
        if self._lock.acquire(timeout=self.wait_s):
            info[KEY] = True
        else:
            log.warning("a write waited %.0f s for this process's other writers", self.wait_s)

    def _ended(self, conn: Any) -> None:
        self._release(conn.connection.info)

    def _reset(self, dbapi_connection: Any, connection_record: Any, reset_state: Any) -> None:
        self._pooled(dbapi_connection, connection_record)

    def _pooled(self, _dbapi: Any, record: Any, *_args: Any) -> None:
        if record is not None:
            self._release(record.info)

    def _release(self, info: dict[str, Any]) -> None:
        if info.pop(KEY, False):
            self._lock.release()
