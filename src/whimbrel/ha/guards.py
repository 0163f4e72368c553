"""The guards that keep failover from becoming the outage: a cap on fencing, and a
manager that takes itself for the isolated one when it loses most hosts at once."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.domain.job import FINAL_JOB_STATES
from whimbrel.errors import InvalidInput
from whimbrel.store.models import HaSettings, Host, Job

FENCE_CAP_MAX = 1000
WINDOW_MIN_S, WINDOW_MAX_S = 60, 7 * 86400


def ha_settings(s: Session, for_update: bool = False) -> HaSettings:
    """The fleet's failover guards.  Reading never writes (a fence decision must not
    hold a write lock): the row is created by the first change of a setting."""
    row = s.scalar(select(HaSettings))
    if row is None:
        row = HaSettings(fence_cap=1, fence_window_s=900)
        if for_update:
            s.add(row)
    return row


def check_ha_settings(fence_cap: int | None, fence_window_s: int | None) -> None:
    if fence_cap is not None and not 0 <= fence_cap <= FENCE_CAP_MAX:
        raise InvalidInput(
            "E_FENCE_CAP_INVALID",
            f"a fence cap of {fence_cap} hosts is not possible",
            f"give how many hosts may be fenced without your confirmation in one window, "
            f"0 (always ask) to {FENCE_CAP_MAX}; the default is 1",
        )
    if fence_window_s is not None and not WINDOW_MIN_S <= fence_window_s <= WINDOW_MAX_S:
        raise InvalidInput(
            "E_FENCE_WINDOW_INVALID",
            f"a fence window of {fence_window_s} s is not possible",
            f"give seconds between {WINDOW_MIN_S} and {WINDOW_MAX_S} (default 900)",
        )


def fence_refusal(s: Session, host: Host, job_id: int | None = None) -> str:
    """Why fencing ``host`` now needs the administrator's word; "" when it may go ahead.

    At most ``fence_cap`` hosts of the fleet, and at most half of a cluster's
    nodes, are fenced automatically within one window.  Failovers under way that
    may fence count too (for a job's own check, only those queued before it, so
    two jobs never refuse each other)."""
    cfg = ha_settings(s)
    since = datetime.now(UTC) - timedelta(seconds=cfg.fence_window_s)
    fenced = [
        h
        for h in s.scalars(select(Host).where(Host.fenced_at.is_not(None), Host.id != host.id))
        if _aware(h.fenced_at) >= since
    ]
    pending = s.scalars(
        select(Job).where(
            Job.kind == "host.failover",
            Job.state.not_in(list(FINAL_JOB_STATES)),
            Job.subject != host.name,
        )
    )
    names = {h.name for h in fenced}
    for j in pending:
        if (job_id is None or j.id < job_id) and not j.op.get("stopped") and j.subject not in names:
            other = s.scalar(select(Host).where(Host.name == j.subject))
            if other is not None:
                fenced.append(other)
                names.add(other.name)
    window = f"{cfg.fence_window_s // 60} min"
    if len(fenced) >= cfg.fence_cap:
        those = ", ".join(sorted(names)) or "none"
        return (
            f"the fence cap is reached: {len(fenced)} host(s) fenced or being failed over in "
            f"the last {window} ({those}), cap {cfg.fence_cap}"
        )
    if host.cluster is not None:
        nodes = len(host.cluster.hosts)
        mates = [h for h in fenced if h.cluster_id == host.cluster_id]
        if len(mates) + 1 > max(1, nodes // 2):
            return (
                f"fencing it would fence {len(mates) + 1} of the {nodes} nodes of cluster "
                f"{host.cluster.name} in {window}: more than half"
            )
    return ""


def _aware(t: datetime | None) -> datetime:
    assert t is not None
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


def manager_isolated(silent: int, total: int) -> bool:
    """Whether the manager, not the hosts, is cut off: it lost most hosts at once.

    Hosts seldom fail together; a manager's own link does.  With two or more of
    its hosts silent and more than half of all, it fences nothing."""
    return silent >= 2 and 2 * silent > total
