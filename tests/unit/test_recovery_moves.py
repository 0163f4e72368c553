"""A quick migration whose manager died in its "restore" step, settled by what the hosts
show: the VM runs on the destination (the job carries on to Completed), or it is still
saved (the job is rolled back: the VM resumes on its source from its saved state)."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from tests.conftest import Api
from tests.unit.test_api_maintenance import _where
from tests.unit.test_api_vms import _vm
from whimbrel.domain.job import JobState
from whimbrel.domain.vm import VmState
from whimbrel.drivers.fake import FakeFleet
from whimbrel.jobs.flows import registry
from whimbrel.jobs.flows.vm_common import spec_of
from whimbrel.jobs.runner import JobRunner
from whimbrel.ops import OpVmMigrate
from whimbrel.preflight.migration import preflight
from whimbrel.store.models import Job
from whimbrel.store.repo import get_vm


@pytest.mark.parametrize("restored", [True, False])
def test_a_quick_migration_cut_in_its_restore_step_ends_as_the_hosts_say(
    hosts: Api,
    fleet: FakeFleet,
    restored: bool,
) -> None:
    api = hosts
    api.ok("POST", "/vms", _vm("q", "f1"))
    m = api.manager
    m.runner.stop()  # the old manager: it will die in the middle of the job
    fresh = JobRunner(m.sessions, registry(), m.conns)
    job_id = fresh.submit(OpVmMigrate("q", "f2", quick=True))
    with m.sessions() as s:
        op = OpVmMigrate("q", "f2", quick=True, source="f1", move="quick")
        plan = preflight(op, s, m.conns)
    path = "/srv/csv/q.whimbrel-state"  # beside its disk on the cluster's shared pool
    # What the hosts hold when the manager died: defined on f2, saved from f1 ...
    f1, f2 = m.conns.for_host("f1"), m.conns.for_host("f2")
    with m.sessions() as s:
        spec = spec_of(get_vm(s, "q"))
    f2.define(spec)
    f1.save_to("q", path)
    if restored:  # ... and, or not, already running on f2
        f2.restore_from(path)
    with m.sessions.begin() as s:
        job = s.get_one(Job, job_id)
        job.state = JobState.RUNNING
        for st in job.steps:
            if st.name == "preflight":
                st.state, st.result = "done", {"plan": plan.to_dict()}
            elif st.name == "define on destination":
                st.state, st.result = "done", {"host": "f2"}
            elif st.name == "save":
                st.state, st.result = "done", {"path": path}
            elif st.name == "restore":
                st.state = "running"
    assert fresh.recover() == [job_id]
    done = fresh.wait(job_id)
    running = sorted(
        (h.name, n)
        for h in fleet.hosts.values()
        for n, d in h.domains.items()
        if d.state == VmState.RUNNING
    )
    assert done.manual_fix == ""
    if restored:
        assert done.state == JobState.COMPLETED, done.message
        assert running == [("f2", "q")] and "q" not in fleet.hosts["f1"].domains
        assert _where(api, "q") == ("f2", "running")
    else:
        assert done.state == JobState.TERMINATED and done.rollback == "clean", done.message
        assert running == [("f1", "q")] and "q" not in fleet.hosts["f2"].domains
    with m.sessions() as s:
        rec = s.scalar(select(Job.progress).where(Job.id == job_id))["recovery"]
    assert rec["step"] == "restore" and rec["truth"] == ("done" if restored else "not done")
