"""SQLite writers of one process take turns on the gate, and every way a
transaction ends (commit, rollback, an exception, a session closed without
either) hands the turn on: otherwise the next writer would wait its 10 s."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.store.db import make_engine
from whimbrel.store.writers import WriterGate, gate_of


@pytest.fixture
def sessions(tmp_path: Path) -> sessionmaker[Session]:
    engine = make_engine(f"sqlite:///{tmp_path / 'w.db'}")
    with engine.begin() as c:
        c.execute(text("CREATE TABLE t (n INTEGER)"))
    return sessionmaker(engine)


def committed(sessions: sessionmaker[Session]) -> None:
    with sessions.begin() as s:
        s.execute(text("INSERT INTO t VALUES (1)"))


def raised(sessions: sessionmaker[Session]) -> None:
    with pytest.raises(RuntimeError), sessions.begin() as s:
        s.execute(text("INSERT INTO t VALUES (2)"))
        raise RuntimeError("the step failed")


def rolled_back(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        s.execute(text("INSERT INTO t VALUES (3)"))
        s.rollback()


def abandoned(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:  # closed without commit or rollback: the pool resets it
        s.execute(text("INSERT INTO t VALUES (4)"))


def gate(sessions: sessionmaker[Session]) -> WriterGate:
    g = gate_of(sessions.kw["bind"])
    assert g is not None
    return g


@pytest.mark.parametrize("end", [committed, raised, rolled_back, abandoned])
def test_every_end_of_a_write_hands_the_turn_on(
    sessions: sessionmaker[Session], end: Callable[[sessionmaker[Session]], None]
) -> None:
    end(sessions)
    assert not gate(sessions).locked()
    t0 = time.monotonic()
    committed(sessions)
    assert time.monotonic() - t0 < 1.0
    with sessions() as s:
        rows = s.scalars(text("SELECT n FROM t ORDER BY n")).all()
    assert rows == ([1, 1] if end is committed else [1])


def test_many_writers_at_once_lose_nothing(sessions: sessionmaker[Session]) -> None:
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            for _ in range(50):
                with sessions.begin() as s:
                    s.execute(text("SELECT count(*) FROM t")).scalar()
                    s.execute(text("INSERT INTO t VALUES (1)"))
                    s.execute(text("UPDATE t SET n = n WHERE n = 0"))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer) for _ in range(24)]
    for th in threads:
        th.start()
    for th in threads:
        th.join(60)
    assert errors == []
    with sessions() as s:
        assert s.scalar(text("SELECT count(*) FROM t")) == 24 * 50


def test_a_write_holds_the_turn_and_reads_do_not_wait(sessions: sessionmaker[Session]) -> None:
    with sessions() as writer:
        writer.execute(text("SELECT count(*) FROM t"))
        assert not gate(sessions).locked()  # a read takes no turn
        writer.execute(text("INSERT INTO t VALUES (5)"))  # holds the turn, uncommitted
        assert gate(sessions).locked()
        t0 = time.monotonic()
        with sessions() as reader:
            assert reader.scalar(text("SELECT count(*) FROM t")) == 0
        assert time.monotonic() - t0 < 1.0
        writer.commit()
    assert not gate(sessions).locked()
