"""Users, their passwords and grants, logins, and the first administrator.

Passwords are hashed with Argon2id (argon2-cffi's defaults, RFC 9106's second
recommendation); a directory user's password is checked by the directory alone.
"""

from __future__ import annotations

import os
import secrets
from datetime import UTC, datetime, timedelta
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.access.directory import DirectoryLogin
from whimbrel.access.policy import FLEET, Principal, Role, role
from whimbrel.access.tokens import LOGIN_TTL, issue
from whimbrel.domain.vm import check_name
from whimbrel.errors import Conflict, InvalidInput, NotFound, Unauthorized
from whimbrel.store.accounts import ApiToken, AuditEntry, Grant, User

FIRST_USER = "admin"
LOGIN_FAILURES = 10  # within LOGIN_WINDOW, per user and per address: then refused
LOGIN_WINDOW = timedelta(minutes=5)
MIN_PASSWORD = 12
REALMS = ("local", "ldap")
_hasher = PasswordHasher()
# Verified when the user is unknown, so that a failed login takes as long either way.
_DUMMY = _hasher.hash(secrets.token_hex(16))


def get_user(s: Session, name: str) -> User:
    user = s.scalar(select(User).where(User.name == name))
    if user is None:
        raise NotFound("E_USER_NOT_FOUND", f"there is no user {name!r}", "run 'whimbrel user list'")
    return user


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise InvalidInput(
            "E_PASSWORD_WEAK",
            f"the password has {len(password)} characters; at least {MIN_PASSWORD} are needed",
            "choose a longer one (a pass phrase of several words is fine)",
        )
    return password


def add_user(s: Session, name: str, realm: str = "local", password: str = "") -> User:
    check_name("user", name)
    if realm not in REALMS:
        raise InvalidInput(
            "E_INVALID_REALM", f"there is no realm {realm!r}", "use 'local' or 'ldap'"
        )
    if s.scalar(select(User.id).where(User.name == name)) is not None:
        raise Conflict("E_USER_EXISTS", f"user {name!r} already exists", "choose another name")
    if realm == "ldap" and password:
        raise InvalidInput(
            "E_PASSWORD_FOR_DIRECTORY_USER",
            f"user {name!r} logs in with the directory's password; Whimbrel keeps none",
            "leave out the password file",
        )
    digest = _hasher.hash(check_password(password)) if realm == "local" else ""
    user = User(name=name, realm=realm, password_hash=digest)
    s.add(user)
    s.flush()
    return user


def set_password(s: Session, name: str, password: str) -> None:
    user = get_user(s, name)
    if user.realm != "local":
        raise InvalidInput(
            "E_PASSWORD_FOR_DIRECTORY_USER",
            f"user {name!r} logs in with the directory's password",
            "change it in the directory",
        )
    user.password_hash = _hasher.hash(check_password(password))


def remove_user(s: Session, name: str) -> None:
    user = get_user(s, name)
    _keep_an_administrator(s, user, None)
    s.delete(user)


def grant(s: Session, name: str, role_name: str, cluster: str = FLEET) -> Grant:
    user, r = get_user(s, name), role(role_name)
    for g in user.grants:
        if g.role == r and g.cluster == cluster:
            return g
    g = Grant(role=r.value, cluster=cluster)
    user.grants.append(g)
    s.flush()
    return g


def revoke(s: Session, name: str, role_name: str, cluster: str = FLEET) -> None:
    user, r = get_user(s, name), role(role_name)
    found = [g for g in user.grants if g.role == r and g.cluster == cluster]
    if not found:
        where = f"cluster {cluster}" if cluster else "the fleet"
        raise NotFound(
            "E_GRANT_NOT_FOUND",
            f"user {name!r} has no role {r.value} on {where}",
            "run 'whimbrel user list' to see the grants",
        )
    _keep_an_administrator(s, user, found[0])
    user.grants.remove(found[0])


def _keep_an_administrator(s: Session, user: User, leaving: Grant | None) -> None:
    """Refuse the change that leaves the fleet without an administrator (``leaving``
    None: the user goes, with every grant)."""
    theirs = [g for g in user.grants if g.role == Role.ADMINISTRATOR and g.cluster == FLEET]
    if not theirs or (leaving is not None and [g for g in theirs if g is not leaving]):
        return
    others = select(func.count(Grant.id)).where(
        Grant.role == Role.ADMINISTRATOR, Grant.cluster == FLEET, Grant.user_id != user.id
    )
    if not s.scalar(others):
        raise Conflict(
            "E_LAST_ADMINISTRATOR",
            f"user {user.name!r} is the fleet's last administrator",
            "grant administrator on the fleet to another user first",
        )


def login(
    s: Session, name: str, password: str, directory: DirectoryLogin | None, source: str = ""
) -> tuple[ApiToken, str]:
    """A login token for ``name``; E_LOGIN_FAILED says nothing of which part was wrong."""
    throttle(s, name, source)
    user = s.scalar(select(User).where(User.name == name))
    ok = False
    if user is None:
        _verify(_DUMMY, password)
    elif user.realm == "local":
        ok = _verify(user.password_hash, password)
    elif directory is not None:
        ok = directory.check(name, password)
    if user is None or not ok:
        raise Unauthorized(
            "E_LOGIN_FAILED",
            "the user name or the password is wrong",
            "check both; an administrator can set a new password with "
            "'whimbrel user password NAME --password-file FILE'",
        )
    if user.realm == "local" and _hasher.check_needs_rehash(user.password_hash):
        user.password_hash = _hasher.hash(password)
    return issue(s, user, "login", LOGIN_TTL)


def throttle(s: Session, name: str, source: str) -> None:
    """Refuse a login after too many failed ones for that user or from that address within
    the window, read from the audit trail (so every replica counts them all)."""
    since = datetime.now(UTC) - LOGIN_WINDOW
    failed = select(func.count(AuditEntry.id)).where(
        AuditEntry.action == "login", AuditEntry.status == 401, AuditEntry.at >= since
    )
    for who, cond in (("user " + repr(name), AuditEntry.user == name),
                      ("address " + source, AuditEntry.source == source)):  # fmt: skip
        if (s.scalar(failed.where(cond)) or 0) >= LOGIN_FAILURES:
            raise Unauthorized(
                "E_LOGIN_THROTTLED",
                f"{LOGIN_FAILURES} or more failed logins for {who} within the last "
                f"{LOGIN_WINDOW.seconds // 60} minutes",
                f"wait {LOGIN_WINDOW.seconds // 60} minutes; an administrator can set a new "
                "password ('whimbrel user password'), and 'whimbrel audit list --action login "
                "--failed' shows the attempts",
            )


def _verify(digest: str, password: str) -> bool:
    try:
        return _hasher.verify(digest, password)
    except (VerificationError, InvalidHashError):
        return False


def principal_of(user: User, token_id: str = "") -> Principal:
    return Principal(user.name, token_id, tuple((g.role, g.cluster) for g in user.grants))


def bootstrap(
    sessions: sessionmaker[Session], token_file: Path, password_file: str
) -> tuple[bool, str]:
    """On a store without users: the first administrator, ``admin``.

    Its password comes from ``password_file``, or is made here and returned (to be
    printed once); its token goes to ``token_file`` (0600), which the CLI on this
    machine reads.  A token file from before users is adopted, so a running CLI keeps
    working.  Returns whether it made the user, and the password it made ('' when none).
    """
    with sessions() as s:
        if s.scalar(select(func.count(User.id))):
            return False, ""
    made = ""
    if password_file:
        password = Path(password_file).read_text().strip()
    else:
        password = made = secrets.token_urlsafe(15)
    old = token_file.read_text().strip() if token_file.exists() else ""
    try:
        with sessions.begin() as s:
            user = add_user(s, FIRST_USER, password=password)
            user.grants.append(Grant(role=Role.ADMINISTRATOR.value, cluster=FLEET))
            _row, token = issue(s, user, "first serve", None, token=old)
    except (IntegrityError, Conflict):
        return False, ""  # another replica made it first
    if not old:
        token_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(token + "\n")
    return True, made
