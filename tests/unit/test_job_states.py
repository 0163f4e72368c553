"""The job and step state tables: walk every pair through the one guard."""

from __future__ import annotations

import itertools

import pytest

from whimbrel.domain.job import (
    FINAL_JOB_STATES,
    JOB_TRANSITIONS,
    STEP_TRANSITIONS,
    JobState,
    StepState,
    check_job_transition,
    check_step_transition,
)
from whimbrel.errors import WrongState


def test_job_guard_accepts_exactly_the_table() -> None:
    for old, new in itertools.product(JobState, JobState):
        if (old, new) in JOB_TRANSITIONS:
            check_job_transition(old, new)
        else:
            with pytest.raises(WrongState) as info:
                check_job_transition(old, new)
            assert info.value.code == "E_JOB_STATE"


def test_step_guard_accepts_exactly_the_table() -> None:
    for old, new in itertools.product(StepState, StepState):
        if (old, new) in STEP_TRANSITIONS:
            check_step_transition(old, new)
        else:
            with pytest.raises(WrongState):
                check_step_transition(old, new)


def test_final_job_states_have_no_way_out() -> None:
    assert not [t for t in JOB_TRANSITIONS if t[0] in FINAL_JOB_STATES]


def test_every_job_state_is_reachable_from_new_and_can_end() -> None:
    reach = {JobState.NEW}
    while True:
        more = {new for old, new in JOB_TRANSITIONS if old in reach} - reach
        if not more:
            break
        reach |= more
    assert reach == set(JobState)
    for state in set(JobState) - FINAL_JOB_STATES:
        seen, todo = {state}, [state]
        while todo:
            cur = todo.pop()
            for old, new in JOB_TRANSITIONS:
                if old == cur and new not in seen:
                    seen.add(new)
                    todo.append(new)
        assert seen & FINAL_JOB_STATES, state


def test_job_states_are_hyperv_jobstate_names() -> None:
    # Msvm_ConcreteJob.JobState 2..10, in order.
    assert [s.value for s in JobState] == [
        "New",
        "Starting",
        "Running",
        "Suspended",
        "ShuttingDown",
        "Completed",
        "Terminated",
        "Killed",
        "Exception",
    ]
