"""Who may use the manager: users, their grants and API tokens, and the audit trail."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import DateTime, ForeignKey, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from whimbrel.store.models import Base, utcnow


class User(Base):
    __tablename__ = "users"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(63), unique=True)
    # 'local': the password's Argon2 hash is here; 'ldap': the directory checks it.
    realm: Mapped[str] = mapped_column(String(16), default="local")
    password_hash: Mapped[str] = mapped_column(String(255), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    grants: Mapped[list[Grant]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="Grant.id"
    )
    tokens: Mapped[list[ApiToken]] = relationship(
        back_populates="user", cascade="all, delete-orphan", order_by="ApiToken.id"
    )


class Grant(Base):
    """A role on the whole fleet (cluster '') or on one cluster."""

    __tablename__ = "grants"
    __table_args__ = (UniqueConstraint("user_id", "role", "cluster"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(32))
    # By name, not by key: a grant on a cluster deleted and made again still holds,
    # as an administrator who scoped it by name expects.
    cluster: Mapped[str] = mapped_column(String(63), default="")
    user: Mapped[User] = relationship(back_populates="grants")


class ApiToken(Base):
    """A bearer token; only its SHA-256 is kept, so the store never holds one usable."""

    __tablename__ = "api_tokens"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)  # shown, never secret
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    label: Mapped[str] = mapped_column(String(128), default="")
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True), nullable=True)
    user: Mapped[User] = relationship(back_populates="tokens")


class AuditEntry(Base):
    """One request that changed (or tried to change) something, or a refused login.

    Append-only: the store refuses an UPDATE or DELETE of a row (migration 0009)."""

    __tablename__ = "audit"
    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow, index=True)
    user: Mapped[str] = mapped_column(String(63), default="", index=True)
    source: Mapped[str] = mapped_column(String(64), default="")  # the client's address
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(512))
    action: Mapped[str] = mapped_column(String(64), default="")  # the op's kind, when one
    status: Mapped[int] = mapped_column(Integer)
    code: Mapped[str] = mapped_column(String(64), default="")  # the error's code, when one
    job_id: Mapped[int | None] = mapped_column(Integer, nullable=True)
    detail: Mapped[str] = mapped_column(Text, default="")


class SealedSecret(Base):
    """A credential (a fence agent's password), sealed with the manager's key file.

    Settings, job ops and results hold 'secret:ID' in its place (access/vault.py)."""

    __tablename__ = "sealed_secrets"
    id: Mapped[str] = mapped_column(String(16), primary_key=True)
    owner: Mapped[str] = mapped_column(String(255), default="")  # what it is for
    sealed: Mapped[str] = mapped_column(Text)  # a Fernet token
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), default=utcnow)
