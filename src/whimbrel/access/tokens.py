"""API tokens: issued to a user, kept as a SHA-256 only, expiring, revocable.

A token is 256 random bits, so a fast hash is enough (a password needs Argon2 because
people choose them); checking one is one indexed read, well under a millisecond.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from datetime import UTC, datetime, timedelta

from sqlalchemy import Connection, select
from sqlalchemy.orm import Session

from whimbrel.access.policy import Principal
from whimbrel.errors import HostUnreachable, InvalidInput, NotFound, Unauthorized
from whimbrel.store.accounts import ApiToken, Grant, User

PREFIX = "wbt_"  # recognisable to secret scanners and in a leaked log
LOGIN_TTL = timedelta(hours=12)
MAX_TTL = timedelta(days=366)


def digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def issue(
    s: Session, user: User, label: str, ttl: timedelta | None, token: str = ""
) -> tuple[ApiToken, str]:
    """A new token for ``user``; the secret is returned once and never stored.

    ``token``: adopt this secret (the token file of a manager from before users)."""
    if ttl is not None and not timedelta(0) < ttl <= MAX_TTL:
        raise InvalidInput(
            "E_TOKEN_EXPIRY",
            f"a token's lifetime must be between 1 second and {MAX_TTL.days} days, not {ttl}",
            "give --expires in seconds, minutes, hours or days (30s, 90m, 12h, 30d), or 'never'",
        )
    secret = token or PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        id=secrets.token_hex(4),
        user=user,
        digest=digest(secret),
        label=label[:128],
        expires_at=None if ttl is None else datetime.now(UTC) + ttl,
    )
    s.add(row)
    s.flush()
    return row, secret


def parse_ttl(text: str) -> timedelta | None:
    """'30s' (a script's single task), '90m', '12h', '30d' or 'never'."""
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400}
    if text == "never":
        return None
    if len(text) >= 2 and text[:-1].isdigit() and text[-1] in units:
        return timedelta(seconds=int(text[:-1]) * units[text[-1]])
    raise InvalidInput(
        "E_TOKEN_EXPIRY",
        f"{text!r} is not a token lifetime",
        "give seconds, minutes, hours or days (30s, 90m, 12h, 30d), or 'never'",
    )


def authenticate(conn: Connection, token: str, token_file: str) -> Principal:
    """The user ``token`` acts for; E_AUTH_TOKEN, _EXPIRED or _REVOKED otherwise.

    One indexed read on a plain connection (no ORM session): it runs on every request."""
    t = ApiToken.__table__
    u, g = User.__table__, Grant.__table__
    rows = conn.execute(
        select(t.c.id, t.c.revoked_at, t.c.expires_at, u.c.name, g.c.role, g.c.cluster)
        .join(u, u.c.id == t.c.user_id)
        .outerjoin(g, g.c.user_id == t.c.user_id)
        .where(t.c.digest == digest(token))
    ).all()
    if not rows:
        raise refused(token_file)
    token_id, revoked_at, expires_at, name = rows[0][:4]
    if revoked_at is not None:
        raise Unauthorized(
            "E_AUTH_TOKEN_REVOKED",
            f"API token {token_id} was revoked at {revoked_at:%Y-%m-%d %H:%M} UTC",
            "log in again ('whimbrel login') or ask an administrator for a new token",
        )
    if expires_at is not None and _aware(expires_at) <= datetime.now(UTC):
        raise Unauthorized(
            "E_AUTH_TOKEN_EXPIRED",
            f"API token {token_id} expired at {expires_at:%Y-%m-%d %H:%M} UTC",
            "log in again ('whimbrel login') or create a new token ('whimbrel token create')",
        )
    grants = tuple((r[4], r[5]) for r in rows if r[4] is not None)
    end = None if expires_at is None else _aware(expires_at).timestamp()
    return Principal(name, token_id, grants, end)


def refused(token_file: str) -> Unauthorized:
    """The one answer to a missing or unknown token."""
    return Unauthorized(
        "E_AUTH_TOKEN",
        "the API token is missing or wrong",
        f"send 'Authorization: Bearer <token>' with the token in {token_file}, "
        "or log in with 'whimbrel login'",
    )


def revoke(s: Session, token_id: str, by: Principal) -> ApiToken:
    """Revoke one token: its owner's own, or anyone's by a fleet administrator."""
    row = s.get(ApiToken, token_id)
    if row is None or (row.user.name != by.user and not by.fleet_administrator):
        raise NotFound(
            "E_TOKEN_NOT_FOUND",
            f"there is no token {token_id!r} of yours",
            "run 'whimbrel token list' to see the ids",
        )
    if row.revoked_at is None:
        row.revoked_at = datetime.now(UTC)
    return row


def view(t: ApiToken) -> dict[str, object]:
    return {
        "id": t.id,
        "user": t.user.name,
        "label": t.label,
        "created_at": _aware(t.created_at).isoformat(),
        "expires_at": None if t.expires_at is None else _aware(t.expires_at).isoformat(),
        "revoked_at": None if t.revoked_at is None else _aware(t.revoked_at).isoformat(),
    }


def _aware(t: datetime) -> datetime:
    """SQLite gives back naive times: they were written in UTC."""
    return t if t.tzinfo is not None else t.replace(tzinfo=UTC)


class RecentlyVerified:
    """Tokens this replica checked against the store lately.

    Within ``fresh_s`` of its check a token is taken as checked (its expiry still
    applies): a request then costs no store read, and a revocation or a grant changed
    on another replica holds here within that time (at once on this one, which forgets
    everything it remembers on such a change).  When the store cannot be reached, a
    token checked within ``grace_s`` is still accepted, so that the replica's own view
    (``/replica``) answers; nothing that changes anything runs without the store anyway.
    """

    def __init__(self, fresh_s: float = 2.0, grace_s: float = 60.0, size: int = 10_000):
        self.fresh_s, self.grace_s, self.size = fresh_s, grace_s, size
        self._seen: dict[str, tuple[float, Principal]] = {}
        self._lock = threading.Lock()

    def keep(self, token: str, p: Principal) -> None:
        with self._lock:
            if len(self._seen) >= self.size:
                self._seen.clear()
            self._seen[digest(token)] = (time.monotonic(), p)

    def forget(self) -> None:
        with self._lock:
            self._seen.clear()

    def fresh(self, token: str) -> Principal | None:
        """The user of a token checked moments ago and not expired since; None: ask the store."""
        seen = self._get(token, self.fresh_s)
        if seen is None or (seen.expires is not None and seen.expires <= time.time()):
            return None
        return seen

    def recall(self, token: str, cause: Exception) -> Principal:
        seen = self._get(token, self.grace_s)
        if seen is not None:
            return seen
        raise HostUnreachable(
            "E_STORE_UNREACHABLE",
            "the manager cannot reach its store to check the API token",
            "check the database server and the link to it (WHIMBREL_DB_URL); "
            "/api/v1/health says what the manager sees, without a token",
            str(cause),
        ) from cause

    def _get(self, token: str, within: float) -> Principal | None:
        with self._lock:
            seen = self._seen.get(digest(token))
        if seen is None or time.monotonic() - seen[0] >= within:
            return None
        return seen[1]
