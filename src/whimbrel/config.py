"""Where Whimbrel keeps its files, and how front ends find the manager.

Everything is under one data directory (``$WHIMBREL_HOME``, by default
``~/.local/share/whimbrel``) so that one user's manager, store, token and PKI
travel together and a test can point at a fresh one.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from whimbrel.errors import InvalidInput

DEFAULT_PORT = 8470


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    api_url: str
    # Finished jobs older than this are pruned (jobs with cleanup left are kept).
    job_retention_days: float = 30.0

    @property
    def token_file(self) -> Path:
        return self.home / "token"

    @property
    def pki_dir(self) -> Path:
        return self.home / "pki"

    @property
    def client_pki_dir(self) -> Path:
        """The manager's own libvirt client credentials (``pkipath`` layout)."""
        return self.pki_dir / "manager"

    @property
    def cache_dir(self) -> Path:
        """Downloads and builds worth keeping across labs (the guest kernel)."""
        return Path(os.environ.get("WHIMBREL_CACHE", Path.home() / ".cache/whimbrel"))

    @property
    def pid_file(self) -> Path:
        return self.home / "serve.pid"

    @property
    def log_file(self) -> Path:
        return self.home / "serve.log"


def load() -> Settings:
    home = Path(os.environ.get("WHIMBREL_HOME", Path.home() / ".local/share/whimbrel"))
    db_url = os.environ.get("WHIMBREL_DB_URL", f"sqlite:///{home / 'whimbrel.db'}")
    api_url = os.environ.get("WHIMBREL_URL", f"http://127.0.0.1:{DEFAULT_PORT}")
    days = os.environ.get("WHIMBREL_JOB_RETENTION_DAYS", "30")
    try:
        retention = float(days)
    except ValueError:
        retention = -1.0
    if not 0 < retention <= 36500:
        raise InvalidInput(
            "E_INVALID_SETTING",
            f"WHIMBREL_JOB_RETENTION_DAYS={days!r} is not a number of days",
            "give how many days finished jobs are kept, such as 30 (the default)",
        )
    return Settings(home, db_url, api_url.rstrip("/"), retention)
