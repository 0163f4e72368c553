"""The audit trail: every request that changed, or tried to change, anything, and every
refused login or token, with the user, the client's address, the op and its job."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.store.accounts import AuditEntry

MAX_PAGE = 500


@dataclass
class Record:
    """What the request's handlers learn on the way, for its audit entry."""

    user: str = ""
    action: str = ""
    job_id: int | None = None
    code: str = ""
    detail: str = ""


def append(s: Session, rec: Record, source: str, method: str, path: str, status: int) -> None:
    s.add(
        AuditEntry(
            user=rec.user,
            source=source[:64],
            method=method,
            path=path[:512],
            action=rec.action,
            status=status,
            code=rec.code,
            job_id=rec.job_id,
            detail=rec.detail[:2000],
        )
    )


def entries(
    s: Session,
    user: str = "",
    action: str = "",
    failed: bool | None = None,
    since: datetime | None = None,
    before: int = 0,
    limit: int = 100,
) -> list[dict[str, Any]]:
    """Newest first; ``before``: an id, to page back from."""
    q = select(AuditEntry).order_by(AuditEntry.id.desc()).limit(min(max(limit, 1), MAX_PAGE))
    if user:
        q = q.where(AuditEntry.user == user)
    if action:
        q = q.where(AuditEntry.action == action)
    if failed is not None:
        q = q.where(AuditEntry.status >= 400 if failed else AuditEntry.status < 400)
    if since is not None:
        q = q.where(AuditEntry.at >= since)
    if before:
        q = q.where(AuditEntry.id < before)
    return [view(e) for e in s.scalars(q)]


def view(e: AuditEntry) -> dict[str, Any]:
    at = e.at if e.at.tzinfo is not None else e.at.replace(tzinfo=UTC)
    return {
        "id": e.id,
        "at": at.isoformat(),
        "user": e.user,
        "source": e.source,
        "method": e.method,
        "path": e.path,
        "action": e.action,
        "status": e.status,
        "code": e.code,
        "job": e.job_id,
        "detail": e.detail,
    }
