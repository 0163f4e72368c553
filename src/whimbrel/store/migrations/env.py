"""Alembic environment: run against the connection handed over by ``store.db.upgrade``."""

from __future__ import annotations

from alembic import context
from sqlalchemy import create_engine

from whimbrel.store import accounts  # noqa: F401  (its tables join the metadata)
from whimbrel.store.models import Base

config = context.config
connection = config.attributes.get("connection")
if connection is None:  # plain 'alembic' command line, e.g. 'alembic revision --autogenerate'
    connection = create_engine(config.get_main_option("sqlalchemy.url") or "").connect()

context.configure(
    connection=connection,
    target_metadata=Base.metadata,
    render_as_batch=True,  # SQLite cannot ALTER most things in place
)
with context.begin_transaction():
    context.run_migrations()
