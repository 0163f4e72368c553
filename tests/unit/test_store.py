"""The store: Alembic schema, SQLite in WAL mode, PostgreSQL by URL."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from sqlalchemy import inspect, text

from whimbrel.errors import InvalidInput
from whimbrel.store.db import make_engine, open_store
from whimbrel.store.models import Base, Cluster


def test_first_start_builds_the_schema_in_wal_mode(tmp_path: Path) -> None:
    sessions = open_store(f"sqlite:///{tmp_path}/sub/w.db")
    engine = sessions.kw["bind"]
    with engine.connect() as c:
        assert c.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert c.execute(text("PRAGMA foreign_keys")).scalar() == 1
        assert c.execute(text("SELECT version_num FROM alembic_version")).scalar() == "0001"
    assert set(inspect(engine).get_table_names()) >= set(Base.metadata.tables)


def test_reopening_keeps_data_and_does_not_migrate_twice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/w.db"
    with open_store(url).begin() as s:
        s.add(Cluster(name="c1", reserve=2))
    with open_store(url)() as s:
        assert s.query(Cluster).one().reserve == 2


def test_unknown_database_url_is_refused() -> None:
    with pytest.raises(InvalidInput) as info:
        make_engine("mysql://x/y")
    assert info.value.code == "E_INVALID_DB_URL"


@pytest.mark.skipif(not os.environ.get("WHIMBREL_TEST_POSTGRES"), reason="no PostgreSQL URL given")
def test_postgresql_by_url() -> None:
    sessions = open_store(os.environ["WHIMBREL_TEST_POSTGRES"])
    with sessions.begin() as s:
        s.add(Cluster(name="pg-c1"))
    with sessions.begin() as s:
        s.delete(s.query(Cluster).filter_by(name="pg-c1").one())
