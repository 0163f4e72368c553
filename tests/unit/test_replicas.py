"""Replicas sharing one PostgreSQL store: each job is claimed and run once, one
replica leads at a time (a deposed one stops before the next begins), a job whose
replica died is taken over and reconciled, and SQLite refuses a second manager."""

from __future__ import annotations

import dataclasses
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from tests.conftest import fresh_database, wait_for
from tests.unit.test_runner import Script, ScriptFlow
from whimbrel.config import Settings
from whimbrel.connections import ConnectionPool
from whimbrel.domain.job import JobState
from whimbrel.drivers.fake import FakeFleet
from whimbrel.errors import Conflict, WrongState
from whimbrel.jobs.flow import FlowRegistry
from whimbrel.jobs.runner import JobRunner
from whimbrel.jobs.step import Truth
from whimbrel.manager import Manager
from whimbrel.ops import OpHostRefresh
from whimbrel.replica.clock import lock_lease
from whimbrel.replica.member import Membership, replicas
from whimbrel.store.db import open_store, side_sessions
from whimbrel.store.models import Job

LEASE_S = 3.0


@dataclass
class Replica:
    sessions: sessionmaker[Session]
    runner: JobRunner
    member: Membership

    def die(self) -> None:
        """Silence, as of a process frozen or cut off: no renewal, no goodbye."""
        self.member._stop.set()
        if self.member._thread is not None:
            self.member._thread.join(10)

    def stop(self) -> None:
        self.runner.stop(timeout=5)
        self.member.stop()
        engine = self.sessions.kw.get("bind")
        if engine is not None:
            engine.dispose()


@pytest.fixture
def store(postgres: str) -> str:
    return fresh_database(postgres)


@pytest.fixture
def make(store: str) -> Iterator[type]:
    made: list[Replica] = []

    def replica(name: str) -> Replica:
        sessions = open_store(store)
        runner_ref: list[JobRunner] = []
        member = Membership(
            sessions,
            name,
            f"http://{name}",
            LEASE_S,
            jobs=lambda: runner_ref[0].running(),
            takeover=lambda: runner_ref[0].recover(),
        )
        runner = JobRunner(
            sessions,
            FlowRegistry([ScriptFlow()]),
            ConnectionPool(sessions, FakeFleet().open),
            janitor_s=3600,
            me=name,
            lease_s=LEASE_S,
            leading=member.leading,
            single=False,
        )
        runner_ref.append(runner)
        member.join()
        runner.start()
        member.start()
        r = Replica(sessions, runner, member)
        made.append(r)
        return r

    yield replica  # type: ignore[misc]
    for r in made:
        r.stop()


def test_concurrent_replicas_run_each_job_once_and_never_two_holding_a_lock(make: type) -> None:
    ScriptFlow.script = sc = Script()
    sc.delay = 0.05
    reps = [make(f"r{i}") for i in range(3)]
    ids = [reps[i % 3].runner.submit(OpHostRefresh("abcdef"[i % 6])) for i in range(36)]
    sessions = reps[0].sessions
    for j in ids:
        assert reps[0].runner.wait(j, timeout=120).state == JobState.COMPLETED
    assert sum(e.endswith(":do0") for e in sc.log) == 36  # once each, never twice
    with sessions() as s:
        jobs = s.scalars(select(Job).where(Job.id.in_(ids))).all()
        by_lock = defaultdict(list)
        for j in jobs:
            assert j.claim == 1, (j.id, j.owner, j.claim)
            by_lock[j.locks[0]].append((j.started_at, j.finished_at))
        owners = {j.owner for j in jobs}
    assert len(owners) >= 2, owners  # the queue is shared, not one replica's
    for lock, spans in by_lock.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert end <= start, f"two jobs held {lock} at once"
    print(f"\n36 jobs on 3 replicas: run by {sorted(owners)}")


def test_a_silent_leader_stops_leading_before_another_starts(make: type) -> None:
    a, b = make("a"), make("b")
    wait_for(lambda: a.member.leading() or b.member.leading(), timeout=10)
    old, new = (a, b) if a.member.leading() else (b, a)
    assert not new.member.leading()
    epoch = old.member.epoch
    old.die()
    wait_for(new.member.leading, timeout=4 * LEASE_S)
    gone, began = old.member.terms[-1], new.member.terms[-1]
    assert not old.member.leading()
    assert gone.until < began.began, (gone, began)  # its term ended before the next began
    assert began.epoch == epoch + 1
    with new.sessions() as s:
        rows = {r["name"]: r for r in replicas(s)}
    assert rows[new.member.name]["state"] == "leader"
    assert rows[new.member.name]["epoch"] == epoch + 1
    print(f"\nepoch {epoch} ended {began.began - gone.until:.2f} s before epoch {epoch + 1} began")


def test_a_leader_frozen_inside_its_renewal_does_not_hold_the_lease_forever(
    make: type, store: str
) -> None:
    """A leader stopped (or cut off behind a link that still acknowledges) in the middle
    of its renewal holds the leader's row lock; its server never hears it go.  The store
    ends that transaction once it idles past the lease, and another replica leads."""
    a = make("a")
    wait_for(a.member.leading, timeout=10)
    b = make("b")
    a.die()
    frozen = side_sessions(store, idle_s=LEASE_S)()
    frozen.begin()
    lock_lease(frozen, "leader")  # and then nothing: the process froze right here
    t0 = time.monotonic()
    try:
        wait_for(b.member.leading, timeout=5 * LEASE_S)
        took = time.monotonic() - t0
        assert b.member.epoch == a.member.epoch + 1
        with pytest.raises(DBAPIError):  # the frozen one's transaction was ended
            frozen.execute(select(1))
    finally:
        frozen.close()
    print(f"\na leader frozen holding the lease's lock: another led {took:.1f} s later")


def test_a_dead_replicas_job_is_taken_over_and_the_dead_one_writes_nothing(
    make: type,
) -> None:
    ScriptFlow.script = sc = Script()
    a = make("a")
    gate, entered = threading.Event(), threading.Event()
    sc.gate["x:1"], sc.entered["x:1"] = gate, entered
    job_id = a.runner.submit(OpHostRefresh("x"))
    assert entered.wait(10)  # step 1 is working on replica a
    b = make("b")
    a.die()
    sc.seen[1] = Truth.DONE  # the hosts show step 1's work in place
    t0 = time.monotonic()
    job = b.runner.wait(job_id, timeout=6 * LEASE_S)
    took = time.monotonic() - t0
    assert job.state == JobState.COMPLETED, job.message
    with b.sessions() as s:
        row = s.get_one(Job, job_id)
        assert (row.owner, row.claim) == ("b", 2)
        assert row.progress["recovery"]["truth"] == "done"
    gate.set()  # the dead replica's step returns now: its writes are refused
    wait_for(lambda: job_id not in a.runner.running(), timeout=10)
    assert not any("undo" in e for e in sc.log), sc.log
    assert sc.log.count("x:do2") == 1, sc.log
    print(f"\ntaken over and completed {took:.1f} s after its replica went silent")


def test_a_deposed_leader_cannot_submit_a_failover(make: type) -> None:
    a = make("a")
    wait_for(a.member.leading, timeout=10)
    a.die()
    wait_for(lambda: not a.member.leading(), timeout=2 * LEASE_S)
    with a.sessions() as s:
        before = s.scalar(select(Job.id).order_by(Job.id.desc()))
    with pytest.raises(WrongState) as e:
        a.runner.submit(OpHostRefresh("y"), guard=a.member.check_leader)
    assert e.value.code == "E_NOT_LEADER"
    with a.sessions() as s:
        assert s.scalar(select(Job.id).order_by(Job.id.desc())) == before  # nothing queued


def test_sqlite_refuses_a_second_manager(
    settings: Settings, fleet: FakeFleet, tmp_path: Path
) -> None:
    settings = dataclasses.replace(settings, db_url=f"sqlite:///{tmp_path / 'one.db'}")
    first = Manager(settings, opener=fleet.open, name="one")
    first.start()
    second = Manager(settings, opener=fleet.open, name="two")
    try:
        with pytest.raises(Conflict) as e:
            second.start()
        assert e.value.code == "E_STORE_SINGLE_MANAGER"
        assert "one" in e.value.cause and "PostgreSQL" in e.value.fix
        assert first.membership.leading()  # the first one is untouched
    finally:
        first.stop()
    second.start()  # once the first is gone, at once: no lease to wait out
    second.stop()
