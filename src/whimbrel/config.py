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
DEFAULT_BOOT_DIR = "/srv/whimbrel/guest"


def boot_dir() -> str:
    """Where on the hosts the kernels and initrds a VM may boot directly live
    (``$WHIMBREL_BOOT_DIR``): a path elsewhere would have the host's QEMU read, and
    libvirt relabel, any file of the host's."""
    return os.path.normpath(os.environ.get("WHIMBREL_BOOT_DIR", DEFAULT_BOOT_DIR))


@dataclass(frozen=True)
class Settings:
    home: Path
    db_url: str
    api_url: str
    # Finished jobs older than this are pruned (jobs with cleanup left are kept).
    job_retention_days: float = 30.0
    # How long a replica's claims (its jobs, the leadership) outlive its silence.
    replica_lease_s: float = 10.0
    # The API token the CLI sends ($WHIMBREL_TOKEN_FILE; default: the data directory's,
    # where the first serve leaves the first administrator's).
    token_path: Path | None = None
    # The key that seals credentials at rest ($WHIMBREL_SECRET_KEY_FILE; replicas share it).
    secret_key_path: Path | None = None

    @property
    def token_file(self) -> Path:
        return self.token_path or self.home / "token"

    @property
    def secret_key_file(self) -> Path:
        return self.secret_key_path or self.home / "secret.key"

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
    retention = _number(
        "WHIMBREL_JOB_RETENTION_DAYS",
        "30",
        0.001,
        36500,
        "how many days finished jobs are kept, such as 30 (the default)",
    )
    lease = _number("WHIMBREL_REPLICA_LEASE_S", "10", 3, 300, "seconds, such as 10 (the default)")
    token = os.environ.get("WHIMBREL_TOKEN_FILE", "")
    key = os.environ.get("WHIMBREL_SECRET_KEY_FILE", "")
    return Settings(
        home,
        db_url,
        api_url.rstrip("/"),
        retention,
        lease,
        Path(token) if token else None,
        Path(key) if key else None,
    )


def _number(var: str, default: str, lo: float, hi: float, what: str) -> float:
    given = os.environ.get(var, default)
    try:
        value = float(given)
    except ValueError:
        value = lo - 1
    if not lo <= value <= hi:
        raise InvalidInput(
            "E_INVALID_SETTING",
            f"{var}={given!r} is not between {lo:g} and {hi:g}",
            f"give {what}",
        )
    return value
