"""The store goes away for a few seconds (PostgreSQL stopped, then started): the jobs
that were running finish, the queued ones start, none is stranded."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from tests.conftest import PgServer, fresh_database
from tests.unit.test_runner import Script, ScriptFlow
from whimbrel.connections import ConnectionPool
from whimbrel.domain.job import JobState
from whimbrel.drivers.fake import FakeFleet
from whimbrel.jobs.flow import FlowRegistry
from whimbrel.jobs.runner import JobRunner
from whimbrel.ops import OpHostRefresh
from whimbrel.store.db import open_store


@pytest.fixture
def own_postgres() -> Iterator[PgServer]:
    """A server of this test's own: stopping it must not disturb the others."""
    server = PgServer()
    yield server
    server.remove()


def test_jobs_ride_out_a_database_restart(own_postgres: PgServer) -> None:
    ScriptFlow.script = sc = Script()
    sessions = open_store(fresh_database(str(own_postgres.sock)))
    runner = JobRunner(
        sessions, FlowRegistry([ScriptFlow()]), ConnectionPool(sessions, FakeFleet().open)
    )
    runner.start()
    try:
        gate, entered = threading.Event(), threading.Event()
        sc.gate["a:1"], sc.entered["a:1"] = gate, entered
        running = runner.submit(OpHostRefresh("a"))
        assert entered.wait(10)
        own_postgres.stop()  # step 1 is working; its result cannot be recorded now
        gate.set()
        time.sleep(3)
        assert runner.health()["db_down_s"] > 0  # and /health says so
        own_postgres.start()
        job = runner.wait(running, timeout=60)
        assert job.state == JobState.COMPLETED, (job.state, job.message)
        assert sc.log == ["a:do0", "a:do1", "a:do2"]  # nothing undone, nothing twice
        assert runner.wait(runner.submit(OpHostRefresh("b"))).state == JobState.COMPLETED
        assert runner.health()["db_down_s"] == 0
    finally:
        runner.stop()
        engine = sessions.kw.get("bind")
        if engine is not None:
            engine.dispose()
