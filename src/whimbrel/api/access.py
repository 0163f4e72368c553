"""Routes for logins, users and their grants, API tokens and the audit trail."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from fastapi import FastAPI, Query
from pydantic import BaseModel, Field
from sqlalchemy import select

from whimbrel.access import audit, request, tokens, users
from whimbrel.access.directory import from_env as directory_from_env
from whimbrel.access.policy import FLEET, Principal, Role, require
from whimbrel.manager import Manager
from whimbrel.store.accounts import ApiToken, User
from whimbrel.store.repo import get_cluster


class LoginIn(BaseModel):
    user: str = Field(max_length=63)
    password: str = Field(max_length=1024)


class UserIn(BaseModel):
    name: str
    realm: str = "local"
    password: str = Field("", max_length=1024)


class PasswordIn(BaseModel):
    password: str = Field(max_length=1024)


class GrantIn(BaseModel):
    role: str
    cluster: str = FLEET


class TokenIn(BaseModel):
    label: str = ""
    expires: str = "30d"  # 30s, 90m, 12h, 30d or never
    user: str = ""  # another user's: fleet administrators only


def user_view(u: User) -> dict[str, Any]:
    return {
        "name": u.name,
        "realm": u.realm,
        "grants": [{"role": g.role, "cluster": g.cluster} for g in u.grants],
        "tokens": sum(1 for t in u.tokens if t.revoked_at is None),
    }


def add_routes(app: FastAPI, manager: Manager) -> None:
    def admin(what: str) -> Principal:
        p = request.principal()
        request.state().record.action = what
        require(p, Role.ADMINISTRATOR, None, what)
        return p

    @app.post("/api/v1/login")
    def login(body: LoginIn) -> dict[str, Any]:
        """A token for 12 hours, for the user's password (checked by the directory for
        users of realm 'ldap')."""
        record = request.state().record
        record.user, record.action = body.user, "login"
        directory = directory_from_env()
        with manager.sessions.begin() as s:
            source = request.state().source
            row, token = users.login(s, body.user, body.password, directory, source)
            return {"token": token, **tokens.view(row)}

    @app.get("/api/v1/whoami")
    def whoami() -> dict[str, Any]:
        p = request.principal()
        grants = [{"role": r, "cluster": c} for r, c in p.grants]
        return {"user": p.user, "token": p.token_id, "grants": grants}

    @app.get("/api/v1/users")
    def list_users() -> list[dict[str, Any]]:
        admin("user.list")
        with manager.sessions() as s:
            return [user_view(u) for u in s.scalars(select(User).order_by(User.name))]

    @app.post("/api/v1/users", status_code=201)
    def add_user(body: UserIn) -> dict[str, Any]:
        admin("user.add")
        with manager.sessions.begin() as s:
            return user_view(users.add_user(s, body.name, body.realm, body.password))

    @app.delete("/api/v1/users/{name}")
    def remove_user(name: str) -> dict[str, Any]:
        admin("user.remove")
        with manager.sessions.begin() as s:
            users.remove_user(s, name)
        manager.access_changed()
        return {"removed": name}

    @app.put("/api/v1/users/{name}/password")
    def set_password(name: str, body: PasswordIn) -> dict[str, Any]:
        p = request.principal()
        request.state().record.action = "user.password"
        if p.user != name:
            require(p, Role.ADMINISTRATOR, None, "setting another user's password")
        with manager.sessions.begin() as s:
            users.set_password(s, name, body.password)
        return {"user": name}

    @app.post("/api/v1/users/{name}/grants", status_code=201)
    def grant(name: str, body: GrantIn) -> dict[str, Any]:
        admin("role.grant")
        with manager.sessions.begin() as s:
            if body.cluster:
                get_cluster(s, body.cluster)
            users.grant(s, name, body.role, body.cluster)
            view = user_view(users.get_user(s, name))
        manager.access_changed()
        return view

    @app.delete("/api/v1/users/{name}/grants")
    def revoke_grant(name: str, role: str, cluster: str = FLEET) -> dict[str, Any]:
        admin("role.revoke")
        with manager.sessions.begin() as s:
            users.revoke(s, name, role, cluster)
            view = user_view(users.get_user(s, name))
        manager.access_changed()
        return view

    @app.get("/api/v1/tokens")
    def list_tokens(user: str = "", all_users: bool = False) -> list[dict[str, Any]]:
        p = request.principal()
        if all_users or (user and user != p.user):
            require(p, Role.ADMINISTRATOR, None, "listing other users' tokens")
        q = select(ApiToken).order_by(ApiToken.created_at)
        with manager.sessions() as s:
            if not all_users:
                q = q.where(ApiToken.user_id == users.get_user(s, user or p.user).id)
            return [tokens.view(t) for t in s.scalars(q)]

    @app.post("/api/v1/tokens", status_code=201)
    def create_token(body: TokenIn) -> dict[str, Any]:
        """A new token; its secret is in this answer only."""
        p = request.principal()
        request.state().record.action = "token.create"
        owner = body.user or p.user
        if owner != p.user:
            require(p, Role.ADMINISTRATOR, None, "creating another user's token")
        with manager.sessions.begin() as s:
            row, secret = tokens.issue(
                s, users.get_user(s, owner), body.label, tokens.parse_ttl(body.expires)
            )
            return {"token": secret, **tokens.view(row)}

    @app.delete("/api/v1/tokens/{token_id}")
    def revoke_token(token_id: str) -> dict[str, Any]:
        request.state().record.action = "token.revoke"
        with manager.sessions.begin() as s:
            view = tokens.view(tokens.revoke(s, token_id, request.principal()))
        manager.access_changed()
        return view

    @app.get("/api/v1/audit")
    def audit_list(
        user: str = "",
        action: str = "",
        failed: bool | None = None,
        since: datetime | None = None,
        before: int = 0,
        limit: int = Query(100, ge=1, le=audit.MAX_PAGE),
    ) -> list[dict[str, Any]]:
        """The trail, newest first; page back with ``before`` (the last id seen)."""
        require(request.principal(), Role.READ_ONLY, None, "reading the audit trail")
        with manager.sessions() as s:
            return audit.entries(s, user, action, failed, since, before, limit)
