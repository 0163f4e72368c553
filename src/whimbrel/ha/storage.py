"""Where the manager sees a cluster's storage heartbeats."""

from __future__ import annotations

from pathlib import Path

from whimbrel.ha.heartbeat import HEARTBEAT_DIR
from whimbrel.store.models import Cluster


def heartbeat_dir(c: Cluster) -> Path | None:
    """The cluster's heartbeat directory as the manager's machine mounts it: the one
    set with ``cluster set --heartbeat-dir``, else HEARTBEAT_DIR under the first shared
    path that exists here; None when the manager sees no such place."""
    if c.heartbeat_dir:
        return Path(c.heartbeat_dir)
    for sp in c.shared_storage:
        if Path(sp.path).is_dir():
            return Path(sp.path) / HEARTBEAT_DIR
    return None
