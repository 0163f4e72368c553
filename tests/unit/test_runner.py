"""The job runner: order, reverse undo, failing undo, cancel, locks, restart."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import ClassVar

import pytest
from sqlalchemy import select

from whimbrel.config import Settings
from whimbrel.connections import ConnectionPool
from whimbrel.domain.job import JobState
from whimbrel.drivers.fake import FakeFleet
from whimbrel.errors import HypervisorError
from whimbrel.jobs.flow import Flow, FlowRegistry
from whimbrel.jobs.runner import JobRunner
from whimbrel.jobs.step import FnStep, JobContext, Step, StepResult
from whimbrel.ops import OpHostRefresh
from whimbrel.store.db import open_store
from whimbrel.store.models import Job, JobStep


class Script:
    """What the test flow's steps do, shared with the test."""

    def __init__(self) -> None:
        self.log: list[str] = []
        self.fail_do: set[int] = set()
        self.fail_undo: set[int] = set()
        self.gate: dict[str, threading.Event] = {}  # "name:index"
        self.entered: dict[str, threading.Event] = {}


class ScriptFlow(Flow):
    op_type = OpHostRefresh  # any op kind will do; the name is the lock
    script: ClassVar[Script] = Script()

    def locks(self, op: OpHostRefresh) -> list[str]:
        return [f"x:{op.name}"]

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
                ctx.progress(f"p{i}", 90 - i * 40)  # reports going backwards on purpose
                if i in sc.fail_do:
                    raise HypervisorError("E_TEST", f"step {i} broke", "nothing")
                return {"i": i}

            def undo(ctx: JobContext, r: StepResult) -> None:
                assert r == {"i": i} or r is None
                sc.log.append(f"{op.name}:undo{i}")
                if i in sc.fail_undo:
                    raise HypervisorError("E_UNDO", f"undo {i} broke", "clean up by hand")

            return FnStep(f"s{i}", f"step {i}", do, undo)

        return [make(i) for i in range(3)]


def _runner(settings: Settings) -> tuple[JobRunner, Script]:
    ScriptFlow.script = Script()
    sessions = open_store(settings.db_url)
    runner = JobRunner(
        sessions, FlowRegistry([ScriptFlow()]), ConnectionPool(sessions, FakeFleet().open)
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


def test_restart_undoes_jobs_the_old_manager_left_running(settings: Settings) -> None:
    runner, sc = _runner(settings)
    job_id = runner.submit(OpHostRefresh("a"))
    # What a manager killed in the middle of step 1 leaves in the store:
    with runner.sessions.begin() as s:
        job = s.get_one(Job, job_id)
        job.state = JobState.RUNNING
        job.steps[0].state, job.steps[0].result = "done", {"i": 0}
        job.steps[1].state = "running"
    fresh, _ = _runner(settings)
    ScriptFlow.script = sc
    fresh.recover()
    with fresh.sessions() as s:
        job = s.get_one(Job, job_id)
        assert job.state == JobState.KILLED
        assert job.rollback == "clean"
    assert sc.log == ["a:undo1", "a:undo0"]


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
