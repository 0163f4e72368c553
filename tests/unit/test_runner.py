"""The job runner: order, reverse undo, failing undo, cancel, locks, restart."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import ClassVar

import pytest
from sqlalchemy import select

from tests.conftest import wait_for
from whimbrel.config import Settings
from whimbrel.connections import ConnectionPool
from whimbrel.domain.job import JobState
from whimbrel.drivers.fake import FakeFleet
from whimbrel.errors import HostUnreachable, HypervisorError, Stranded, WrongState
from whimbrel.jobs import janitor
from whimbrel.jobs.flow import Flow, FlowRegistry
from whimbrel.jobs.runner import JobRunner
from whimbrel.jobs.step import FnStep, JobContext, Observed, Step, StepResult, Truth
from whimbrel.ops import OpHostRefresh, OpHostRemove
from whimbrel.store.db import open_store
from whimbrel.store.models import Job, JobStep


class Script:
    """What the test flow's steps do, shared with the test."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.fail_do: set[int] = set()
        self.fail_undo: set[int] = set()
        self.strand: set[int] = set()  # steps that leave work no undo can take back
        self.gate: dict[str, threading.Event] = {}  # "name:index"
        self.entered: dict[str, threading.Event] = {}
        self.host_down: set[int] = set()  # undos that find their host silent
        self.seen: dict[int, Truth] = {}  # what observing each step finds after a restart
        self.delay = 0.0  # seconds each step takes


class ScriptFlow(Flow):
    op_type = OpHostRefresh  # any op kind will do; the name is the lock
    script: ClassVar[Script] = Script()

    def locks(self, op: OpHostRefresh) -> list[str]:
        return [f"vm:{op.name}"]

    def steps(self, op: OpHostRefresh) -> list[Step]:
        sc = self.script

        def make(i: int) -> Step:
            def do(ctx: JobContext) -> StepResult:
                sc.log.append(f"{op.name}:do{i}")
                key = f"{op.name}:{i}"
                if key in sc.entered:
                    sc.entered[key].set()
                if key in sc.gate:
                    sc.gate.pop(key).wait(10)  # once: a rerun of the same name passes
                time.sleep(sc.delay)
                ctx.progress(f"p{i}", 90 - i * 40)  # reports going backwards on purpose
                if i in sc.fail_do:
                    raise HypervisorError("E_TEST", f"step {i} broke", "nothing")
                if i in sc.strand:
                    raise Stranded("E_STRANDED", f"step {i} is half done", "finish it by hand")
                return {"i": i}

            def undo(ctx: JobContext, r: StepResult) -> None:
                assert r == {"i": i} or r is None
                sc.log.append(f"{op.name}:undo{i}")
                if i in sc.fail_undo:
                    raise HypervisorError("E_UNDO", f"undo {i} broke", "clean up by hand")
                if i in sc.host_down:
                    raise HostUnreachable("E_HOST_UNREACHABLE", "host h9 does not answer", "")

            def observe(ctx: JobContext) -> Observed:
                sc.log.append(f"{op.name}:observe{i}")
                truth = sc.seen.get(i, Truth.UNKNOWN)
                return Observed(truth, f"the test says {truth}", {"i": i, "observed": True})

            return FnStep(f"s{i}", f"step {i}", do, undo, observe=observe)

        return [make(i) for i in range(3)]


def _runner(settings: Settings) -> tuple[JobRunner, Script]:
    ScriptFlow.script = Script()
    sessions = open_store(settings.db_url)
    runner = JobRunner(
        sessions,
        FlowRegistry([ScriptFlow()]),
        ConnectionPool(sessions, FakeFleet().open),
        janitor_s=3600,  # the tests call the janitor themselves
    )
    return runner, ScriptFlow.script


@pytest.fixture
def running(settings: Settings) -> Iterator[tuple[JobRunner, Script]]:
    """A started runner over the script flow, stopped after the test."""
    runner, script = _runner(settings)
    runner.start()
    yield runner, script
    runner.stop()


def _steps(runner: JobRunner, job_id: int) -> list[str]:
    with runner.sessions() as s:
        return [
            r.state
            for r in s.scalars(
                select(JobStep).where(JobStep.job_id == job_id).order_by(JobStep.index)
            )
        ]


def test_steps_run_in_order_and_percent_never_goes_back(running: tuple[JobRunner, Script]) -> None:
    runner, sc = running
    job = runner.wait(runner.submit(OpHostRefresh("a")))
    assert job.state == JobState.COMPLETED
    assert sc.log == ["a:do0", "a:do1", "a:do2"]
    assert job.percent == 100
    assert _steps(runner, job.id) == ["done", "done", "done"]
    with runner.sessions() as s:
        assert [r.result for r in s.get_one(Job, job.id).steps] == [{"i": 0}, {"i": 1}, {"i": 2}]


def test_failure_undoes_completed_steps_in_reverse(running: tuple[JobRunner, Script]) -> None:
    runner, sc = running
    sc.fail_do = {2}
    job = runner.wait(runner.submit(OpHostRefresh("a")))
    assert job.state == JobState.EXCEPTION
    assert job.rollback == "clean"
    assert job.error is not None and job.error["code"] == "E_TEST"
    assert sc.log == ["a:do0", "a:do1", "a:do2", "a:undo1", "a:undo0"]
    assert _steps(runner, job.id) == ["undone", "undone", "failed"]


def test_failing_undo_leaves_a_manual_fix_and_goes_on(running: tuple[JobRunner, Script]) -> None:
    runner, sc = running
    sc.fail_do, sc.fail_undo = {2}, {1}
    job = runner.wait(runner.submit(OpHostRefresh("a")))
    assert job.state == JobState.EXCEPTION
    assert job.rollback == "failed"
    assert "step 2 's1'" in job.manual_fix and "undo 1 broke" in job.manual_fix
    assert sc.log[-2:] == ["a:undo1", "a:undo0"]  # step 0 is still undone
    assert _steps(runner, job.id) == ["undone", "undo_failed", "failed"]


def test_a_stranded_step_ends_the_job_without_undoing_anything(
    running: tuple[JobRunner, Script],
) -> None:
    runner, sc = running
    sc.strand = {2}
    job = runner.wait(runner.submit(OpHostRefresh("a")))
    assert job.state == JobState.EXCEPTION and job.rollback == "none"
    assert sc.log == ["a:do0", "a:do1", "a:do2"]  # no undo at all
    assert _steps(runner, job.id) == ["done", "done", "failed"]
    assert job.error is not None and job.error["code"] == "E_STRANDED"
    assert job.manual_fix == "Nothing was undone: step 2 is half done. finish it by hand"
    assert "nothing undone" in job.message


def test_cancel_stops_between_steps_and_undoes(running: tuple[JobRunner, Script]) -> None:
    runner, sc = running
    gate, entered = threading.Event(), threading.Event()
    sc.gate["a:1"], sc.entered["a:1"] = gate, entered
    job_id = runner.submit(OpHostRefresh("a"))
    assert entered.wait(10)
    runner.cancel(job_id)
    gate.set()
    job = runner.wait(job_id)
    assert job.state == JobState.TERMINATED
    assert sc.log == ["a:do0", "a:do1", "a:undo1", "a:undo0"]


def test_jobs_sharing_a_lock_queue_instead_of_failing(running: tuple[JobRunner, Script]) -> None:
    runner, sc = running
    gate, entered = threading.Event(), threading.Event()
    sc.gate["a:0"], sc.entered["a:0"] = gate, entered
    first = runner.submit(OpHostRefresh("a"))
    assert entered.wait(10)
    second = runner.submit(OpHostRefresh("a"))
    other = runner.submit(OpHostRefresh("b"))
    runner.wait(other)  # a different lock runs at once
    with runner.sessions() as s:
        queued = s.get_one(Job, second)
        assert queued.state == JobState.NEW
        assert "queued: position 1" in queued.message
    gate.set()
    assert runner.wait(first).state == JobState.COMPLETED
    assert runner.wait(second).state == JobState.COMPLETED
    a_log = [e for e in sc.log if e.startswith("a:")]
    assert a_log == ["a:do0", "a:do1", "a:do2"] * 2


def _killed_in_step_1(settings: Settings) -> tuple[JobRunner, Script, int]:
    """What a manager killed in the middle of step 1 leaves in the store, and a new
    runner over it."""
    runner, sc = _runner(settings)
    job_id = runner.submit(OpHostRefresh("a"))
    with runner.sessions.begin() as s:
        job = s.get_one(Job, job_id)
        job.state = JobState.RUNNING
        job.steps[0].state, job.steps[0].result = "done", {"i": 0}
        job.steps[1].state = "running"
    fresh, _ = _runner(settings)
    ScriptFlow.script = sc
    return fresh, sc, job_id


def test_restart_cannot_tell_so_it_undoes_the_interrupted_step_too(settings: Settings) -> None:
    fresh, sc, job_id = _killed_in_step_1(settings)
    assert fresh.recover() == [job_id]
    job = fresh.wait(job_id)
    assert job.state == JobState.KILLED and job.rollback == "clean"
    assert sc.log == ["a:observe1", "a:undo1", "a:undo0"]
    assert job.progress["recovery"]["truth"] == "unknown"


def test_restart_carries_on_a_job_whose_interrupted_step_took_effect(settings: Settings) -> None:
    fresh, sc, job_id = _killed_in_step_1(settings)
    sc.seen[1] = Truth.DONE  # the VM runs on the destination, say
    fresh.recover()
    job = fresh.wait(job_id)
    assert job.state == JobState.COMPLETED and job.manual_fix == ""
    assert sc.log == ["a:observe1", "a:do2"]  # nothing replayed, nothing undone
    assert _steps(fresh, job_id) == ["done", "done", "done"]
    assert job.steps[1].result == {"i": 1, "observed": True}


def test_restart_rolls_back_what_came_before_a_step_that_never_took_effect(
    settings: Settings,
) -> None:
    fresh, sc, job_id = _killed_in_step_1(settings)
    sc.seen[1] = Truth.NOT_DONE  # the VM still runs on its source
    fresh.recover()
    job = fresh.wait(job_id)
    assert job.state == JobState.TERMINATED and job.rollback == "clean"
    assert job.manual_fix == ""  # no false "fix by hand"
    assert sc.log == ["a:observe1", "a:undo0"]
    assert _steps(fresh, job_id) == ["undone", "failed", "pending"]
    assert job.error is not None and job.error["code"] == "E_INTERRUPTED"


def test_restart_between_two_steps_goes_on_from_the_next(settings: Settings) -> None:
    runner, sc = _runner(settings)
    job_id = runner.submit(OpHostRefresh("a"))
    with runner.sessions.begin() as s:
        job = s.get_one(Job, job_id)
        job.state = JobState.RUNNING
        for k in (0, 1):
            job.steps[k].state, job.steps[k].result = "done", {"i": k}
    fresh, _ = _runner(settings)
    ScriptFlow.script = sc
    fresh.recover()
    assert fresh.wait(job_id).state == JobState.COMPLETED
    assert sc.log == ["a:do2"]


def test_an_undo_whose_host_is_silent_waits_for_it_and_blocks_the_vm(
    running: tuple[JobRunner, Script],
) -> None:
    runner, sc = running
    sc.fail_do, sc.host_down = {2}, {1}
    job = runner.wait(runner.submit(OpHostRefresh("a")))
    assert job.state == JobState.EXCEPTION and job.rollback == "pending"
    assert job.manual_fix == ""  # not a fix by hand: it will be done
    assert _steps(runner, job.id) == ["undone", "undo_pending", "failed"]
    # A later job on the same VM is told what blocks it, and changes nothing.
    with pytest.raises(WrongState) as exc:
        runner.submit(OpHostRefresh("a"))
    assert exc.value.code == "E_CLEANUP_PENDING" and "step 2 (step 1)" in exc.value.cause
    assert runner.submit(OpHostRefresh("b"))  # other VMs are not held up
    # The host answers again: the next try does it, and the VM is free.
    sc.host_down.clear()
    sc.fail_do.clear()
    # (The janitor waits while a job still holds the VM: the first job's thread may
    # not have let go of it yet.)
    wait_for(lambda: janitor.retry_pending(runner) == 1, timeout=10, period=0.1)
    with runner.sessions() as s:
        done = s.get_one(Job, job.id)
        assert done.rollback == "clean" and "waited for its host is done" in done.message
    assert _steps(runner, job.id) == ["undone", "undone", "failed"]
    assert runner.wait(runner.submit(OpHostRefresh("a"))).state == JobState.COMPLETED


def test_a_bad_scheduling_pass_does_not_stop_the_scheduler(
    running: tuple[JobRunner, Script],
) -> None:
    runner, _ = running
    with runner.sessions.begin() as s:  # a job no flow knows: every pass trips on it
        s.add(Job(kind="vm.teleport", subject="x", op={}, state=JobState.NEW, locks=[]))
    time.sleep(1.2)
    job = runner.wait(runner.submit(OpHostRefresh("a")))
    assert job.state == JobState.COMPLETED
    assert runner.health()["scheduler"] < 2


def test_parents_waiting_for_children_take_no_worker(settings: Settings) -> None:
    ScriptFlow.script = sc = Script()
    sessions = open_store(settings.db_url)
    runner = JobRunner(
        sessions,
        FlowRegistry([ScriptFlow(), ParentFlow()]),
        ConnectionPool(sessions, FakeFleet().open),
        workers=1,
    )
    runner.start()
    try:
        # Two parents at once, each waiting for two children, with a single worker.
        parents = [runner.submit(OpHostRemove(f"p{k}")) for k in range(2)]
        for p in parents:
            assert runner.wait(p, timeout=30).state == JobState.COMPLETED
        assert sorted(e for e in sc.log if e.endswith("do2")) == [
            "p0-c0:do2",
            "p0-c1:do2",
            "p1-c0:do2",
            "p1-c1:do2",
        ]
    finally:
        runner.stop()


class ParentFlow(Flow):
    """A drain in miniature: it submits two script jobs and waits for them."""

    op_type = OpHostRemove
    waits_for_children = True

    def locks(self, op: OpHostRemove) -> list[str]:
        return [f"host:{op.name}"]

    def steps(self, op: OpHostRemove) -> list[Step]:
        def wait_for_kids(ctx: JobContext) -> StepResult:
            kids = [ctx.submit(OpHostRefresh(f"{op.name}-c{k}")) for k in range(2)]
            deadline = time.monotonic() + 20
            while time.monotonic() < deadline:
                with ctx.sessions() as s:
                    states = [s.get_one(Job, k).state for k in kids]
                if all(st == JobState.COMPLETED for st in states):
                    return {"children": kids}
                time.sleep(0.05)
            raise HypervisorError("E_TEST", "children starved", "")

        return [FnStep("drain", "wait for the children", wait_for_kids)]


def test_finished_jobs_past_the_retention_are_pruned(running: tuple[JobRunner, Script]) -> None:
    runner, _ = running
    old, recent = (runner.wait(runner.submit(OpHostRefresh(n))).id for n in ("a", "b"))
    with runner.sessions.begin() as s:
        s.get_one(Job, old).finished_at = datetime.now(UTC) - timedelta(days=31)
    assert janitor.prune(runner.books, 30) == 1
    with runner.sessions() as s:
        assert s.get(Job, old) is None and s.get(Job, recent) is not None
        assert s.scalars(select(JobStep).where(JobStep.job_id == old)).all() == []


def test_unknown_op_kind_is_refused() -> None:
    from whimbrel.errors import InvalidInput
    from whimbrel.ops import op_from_dict

    try:
        op_from_dict({"kind": "vm.teleport", "name": "x"})
    except InvalidInput as exc:
        assert exc.code == "E_INVALID_OP"
    else:
        raise AssertionError("no error")


def test_ops_round_trip_through_json() -> None:
    from whimbrel.ops import ALL_OPS, DiskRequest, OpVmCreate, op_from_dict

    op = OpVmCreate("v", "h", disks=(DiskRequest(64, "csv"),), networks=("n",), uuid="u")
    assert op_from_dict(op.to_dict()) == op
    assert len({o.kind for o in ALL_OPS}) == len(ALL_OPS)
