"""The store: Alembic schema equal to the models, SQLite in WAL mode, PostgreSQL by URL."""

from __future__ import annotations

from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import text

from whimbrel.access.audit import Record, append
from whimbrel.config import Settings
from whimbrel.errors import InvalidInput
from whimbrel.store.accounts import AuditEntry
from whimbrel.store.catalog import Template
from whimbrel.store.db import make_engine, open_store
from whimbrel.store.models import Base, Cluster


def test_migrations_build_exactly_the_models(settings: Settings) -> None:
    """Catches a model change without its migration (and types one database ignores)."""
    assert Template.__tablename__ in Base.metadata.tables  # every model module is loaded
    engine = open_store(settings.db_url).kw["bind"]
    with engine.connect() as c:
        diff = compare_metadata(MigrationContext.configure(c), Base.metadata)
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0010"
    assert diff == []


def test_the_audit_trail_is_append_only_in_the_store(settings: Settings) -> None:
    sessions = open_store(settings.db_url)
    with sessions.begin() as s:
        append(s, Record(user="ann", action="vm.migrate"), "127.0.0.1", "POST", "/x", 202)
    for change in ("UPDATE audit SET status = 200", "DELETE FROM audit"):
        with pytest.raises(Exception, match="append-only"), sessions.begin() as s:
            s.execute(text(change))
    with sessions() as s:
        assert [(e.user, e.status) for e in s.query(AuditEntry)] == [("ann", 202)]


def test_sqlite_runs_in_wal_mode_with_foreign_keys(tmp_path: Path) -> None:
    engine = open_store(f"sqlite:///{tmp_path}/sub/w.db").kw["bind"]
    with engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA foreign_keys")).scalar() == 1


def test_reopening_keeps_data_and_does_not_migrate_twice(settings: Settings) -> None:
    with open_store(settings.db_url).begin() as s:
        s.add(Cluster(name="c1", reserve=2))
    with open_store(settings.db_url)() as s:
        assert s.query(Cluster).one().reserve == 2


def test_unknown_database_url_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        make_engine("mysql://x/y")
    assert info.value.code == "E_INVALID_DB_URL"


def test_the_store_file_is_its_owners_alone(tmp_path: Path) -> None:
    """It holds host and fence credentials: 0600 in a 0700 directory, whatever the umask."""
    import os

    from whimbrel.store.db import make_engine

    old = os.umask(0o022)
    try:
        engine = make_engine(f"sqlite:///{tmp_path}/home/whimbrel.db")
        with engine.connect() as c:
            c.exec_driver_sql("CREATE TABLE t (x)")
            c.commit()
        engine.dispose()
    finally:
        os.umask(old)
    assert (tmp_path / "home").stat().st_mode & 0o777 == 0o700
    for f in (tmp_path / "home").iterdir():
        assert f.stat().st_mode & 0o777 == 0o600, f
