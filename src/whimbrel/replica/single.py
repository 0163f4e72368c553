"""SQLite serves one manager: a second one on the same store is refused.

The guard is an exclusive ``flock`` on a file beside the database, held for the
manager's life: the kernel drops it the moment the process dies, however it
dies, so a restart after a crash is never refused and two live managers never
share the file.
"""

from __future__ import annotations

import fcntl
import os
from pathlib import Path

from whimbrel.errors import Conflict


class SqliteGuard:
    def __init__(self, db_path: Path) -> None:
        self.path = db_path.with_name(db_path.name + ".manager")
        self._fd: int | None = None

    def take(self, who: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 512, 0).decode(errors="replace").strip() or "another process"
            os.close(fd)
            raise Conflict(
                "E_STORE_SINGLE_MANAGER",
                f"another manager ({holder}) already runs on the SQLite store "
                f"{self.path.with_suffix('')}; SQLite serves one manager only",
                "stop it ('whimbrel serve --stop'), or run every replica against PostgreSQL "
                "with WHIMBREL_DB_URL=postgresql+psycopg://USER@HOST/DB",
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{who}, pid {os.getpid()}\n".encode(), 0)
        self._fd = fd

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing drops the lock
            self._fd = None


def sqlite_path(db_url: str) -> Path | None:
    """The file of a SQLite URL; None for PostgreSQL or an in-memory store."""
    if not db_url.startswith("sqlite"):
        return None
    path = db_url.split("///", 1)[-1]
    return Path(path) if path and path != ":memory:" else None
