"""The live-migration loop against a copy whose figures the test writes: when it switches
to post-copy, what it does when a post-copy stops moving, and what it says when it cannot
be resumed.  The lab's functional tests run the same loop on real QEMU."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest

from whimbrel.domain.convergence import predict
from whimbrel.domain.migration import (
    MIB,
    Auth,
    MigrationRequest,
    MigrationResult,
    MigrationStats,
    Performance,
    Policy,
)
from whimbrel.domain.vm import DomainInfo, VmState
from whimbrel.errors import HypervisorError, NotFound, Stranded
from whimbrel.jobs import live, postcopy
from whimbrel.jobs.live import LiveMigration

MEM = 256 * MIB


class Copy:
    """A source host whose migration runs until the test ends it, with figures set by it."""

    uri = "qemu+tls://h1/system"

    def __init__(self) -> None:
        self.stats = MigrationStats(active=True, memory_total=MEM)
        self.calls: list[str] = []
        self.end = threading.Event()
        self.fail: Exception | None = None  # how the running copy ends, when it does
        self.resumes: list[Exception | None] = []  # each resume's outcome, in turn
        self.seen: dict[str, float] = {}  # lifecycle event → when the host last pushed it
        self.state: VmState | None = VmState.PAUSED  # None: the source let the VM go

    def migrate(self, name: str, req: MigrationRequest, auto_converge: bool) -> None:
        self.started = req
        self.end.wait(10)
        if self.fail is not None:
            raise self.fail

    def migration_stats(self, name: str) -> MigrationStats:
        return self.stats

    def tune_migration(self, name: str, downtime_ms: int = 0, postcopy: bool = False) -> None:
        self.calls.append("post-copy" if postcopy else f"downtime {downtime_ms}")

    def pause_postcopy(self, name: str) -> None:
        self.calls.append("pause")
        self.fail = HypervisorError("E_MIGRATION_FAILED", "post-copy paused", "")
        self.end.set()

    def resume_postcopy(self, name: str, req: MigrationRequest) -> None:
        self.calls.append("resume")
        outcome = self.resumes.pop(0)
        if outcome is not None:
            raise outcome

    def abort_migration(self, name: str) -> None:
        self.calls.append("abort")

    def last_event(self, name: str, kind: str) -> float | None:
        return self.seen.get(kind)

    def domain(self, name: str) -> DomainInfo:
        if self.state is None:
            raise NotFound("E_DOMAIN_NOT_FOUND", "no such domain", "")
        return DomainInfo(name, "u", self.state, 256, 1)


class Dest:
    def __init__(self) -> None:
        self.seen: dict[str, float] = {}
        self.state: VmState | None = VmState.PAUSED  # waits for its pages; None: gone
        self.pauses = 0

    def pause_postcopy(self, name: str) -> None:
        self.pauses += 1

    def domain(self, name: str) -> DomainInfo:
        if self.state is None:
            raise NotFound("E_DOMAIN_NOT_FOUND", "no such domain", "")
        return DomainInfo(name, "u", self.state, 256, 1)

    def last_event(self, name: str, kind: str) -> float | None:
        return self.seen.get(kind)

    def migration_result(self, name: str, strategy: list[str]) -> MigrationResult:
        return MigrationResult(0, 0, 0, 0, 0, strategy)  # libvirt's after a post-copy


class Ctx:
    def __init__(self) -> None:
        self.cancel = False
        self.phases: list[str] = []

    def cancelled(self) -> bool:
        return self.cancel

    def step_progress(self, fraction: float, phase: str, message: str = "", **_: Any) -> None:
        self.phases.append(phase)


@pytest.fixture(autouse=True)
def quick(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(live, "POLL_S", 0.01)
    monkeypatch.setattr(postcopy, "POLL_S", 0.01)
    monkeypatch.setattr(live, "POSTCOPY_STALL_S", 0.2)
    monkeypatch.setattr(postcopy, "POSTCOPY_RECOVER_S", 1.0)
    monkeypatch.setattr(postcopy, "POSTCOPY_RETRY_S", 0.01)
    monkeypatch.setattr(live, "EVENT_WAIT_S", 0.05)


def loop(
    src: Copy, policy: Policy, dirty: int, ctx: Ctx | None = None, dst: Dest | None = None
) -> LiveMigration:
    req = MigrationRequest("qemu+tls://h2/system", "", Auth.PEER, Performance.TCP, policy=policy)
    pred = predict(MEM, dirty, 48 * MIB, "measured", policy)
    dest = dst or Dest()
    return LiveMigration(ctx or Ctx(), src, dest, "vm1", req, pred, MEM)  # type: ignore[arg-type]


def passes(src: Copy, *figures: dict[str, int]) -> None:
    """Let the loop see each set of figures, then end the copy."""
    for f in figures:
        src.stats = MigrationStats(active=True, memory_total=MEM, **f)
        time.sleep(0.05)
    src.end.set()


def run(mig: LiveMigration, src: Copy, *figures: dict[str, int]) -> Any:
    t = threading.Thread(target=passes, args=(src, *figures))
    t.start()
    try:
        return mig.run()
    finally:
        t.join()


def test_predicted_post_copy_switches_once_the_first_pass_is_sent() -> None:
    src = Copy()
    mig = loop(src, Policy(postcopy=True), 64 * MIB)
    r = run(mig, src, {"iteration": 1}, {"iteration": 2, "memory_processed": MEM})
    assert src.calls == ["post-copy"]
    assert "first pass sent: switched to post-copy, as predicted" in r.strategy
    # libvirt keeps nothing on the destination: the source's last figures are reported.
    assert r.memory_bytes == MEM and r.iterations == 2 and r.total_ms > 0


@pytest.mark.parametrize("events", [True, False])
def test_after_a_post_copy_the_downtime_is_the_guests_pause_by_the_hosts_events(
    events: bool,
) -> None:
    src, dst = Copy(), Dest()
    mig = loop(src, Policy(postcopy=True), 64 * MIB, dst=dst)
    if events:  # stopped on the source, running on the destination 70 ms later
        src.seen["suspended"] = time.time() + 0.02
        dst.seen["resumed"] = src.seen["suspended"] + 0.07
    else:  # an event from an older move does not count
        src.seen["suspended"], dst.seen["resumed"] = time.time() - 60, time.time() - 59
    last = {"iteration": 2, "memory_processed": MEM, "downtime_ms": 1200}
    r = run(mig, src, {"iteration": 1}, last)
    if events:
        assert r.downtime_ms == 70
        assert "downtime from the hosts' events (libvirt's 1200 ms)" in r.strategy
    else:
        assert r.downtime_ms == 1200  # libvirt's figure stands when the events say nothing


def test_without_post_copy_a_stalled_copy_raises_the_downtime_instead() -> None:
    src = Copy()
    mig = loop(src, Policy(), -1)
    stalled = [{"iteration": i, "memory_remaining": 64 * MIB} for i in range(2, 6)]
    run(mig, src, *stalled)
    assert src.calls == ["downtime 600"] and "post-copy" not in src.calls


def test_a_copy_the_link_cannot_keep_up_with_switches_when_measured() -> None:
    src = Copy()
    mig = loop(src, Policy(postcopy=True), -1)  # unknown rate: pre-copy to begin with
    fast = {"iteration": 2, "memory_bps": 48 * MIB, "dirty_rate_pps": 60 * MIB // 4096}
    r = run(mig, src, {"iteration": 1}, fast)
    assert src.calls == ["post-copy"] and "switched to post-copy" in r.strategy[-1]


@pytest.mark.parametrize(("dirty", "armed"), [(4 * MIB, False), (24 * MIB, True), (-1, True)])
def test_post_copy_is_armed_only_for_a_guest_that_may_need_it(dirty: int, armed: bool) -> None:
    # Armed, QEMU's final pause of a plain pre-copy grows: a guest dirtying under half
    # the usable link (48 MiB/s at 80 % here) converges with room and moves without it.
    src = Copy()
    mig = loop(src, Policy(postcopy=True), dirty)
    run(mig, src, {"iteration": 1})
    assert src.started.policy.postcopy is armed and mig.postcopy is armed


def test_a_post_copy_that_stops_moving_is_paused_and_resumed() -> None:
    src = Copy()
    src.resumes = [HypervisorError("E_MIGRATION_FAILED", "no route to host", ""), None]
    mig = loop(src, Policy(postcopy=True), 64 * MIB)
    src.stats = MigrationStats(active=True, iteration=2, memory_processed=MEM // 2)
    r = mig.run()  # nothing moves: the loop pauses it, then resumes it
    assert src.calls == ["post-copy", "pause", "pause", "resume", "pause", "resume"]
    assert mig.dst.pauses == 3  # type: ignore[attr-defined]  # the destination's too
    assert "post-copy broke; resumed after 2 tries" in r.strategy
    assert "post-copy recovery" in mig.ctx.phases  # type: ignore[attr-defined]


def test_a_paused_post_copy_whose_call_hangs_is_resumed_all_the_same() -> None:
    """libvirt's migrate call can stay blocked on the dead link after the pause."""
    src = Copy()
    src.resumes = [None]
    src.pause_postcopy = lambda name: src.calls.append("pause")  # type: ignore[method-assign]
    mig = loop(src, Policy(postcopy=True), 64 * MIB)
    src.stats = MigrationStats(active=True, iteration=2, memory_processed=MEM // 2)
    r = mig.run()
    src.end.set()
    assert src.calls[-1] == "resume" and "post-copy broke; resumed after 1 tries" in r.strategy


def test_a_post_copy_that_ended_while_it_looked_broken_is_not_resumed() -> None:
    """Observe, then act: the source let the VM go and the destination runs it."""
    src, dst = Copy(), Dest()
    src.fail = HypervisorError("E_MIGRATION_FAILED", "Domain not found", "")
    src.state, dst.state = None, VmState.RUNNING
    mig = loop(src, Policy(postcopy=True), 64 * MIB, dst=dst)
    r = run(mig, src, {"iteration": 1}, {"iteration": 2, "memory_processed": MEM})
    assert "resume" not in src.calls
    assert r.strategy[-1].startswith("post-copy ended on its own after it broke (Domain not")


def test_a_post_copy_that_cannot_be_resumed_strands_the_job_saying_where_the_vm_is() -> None:
    src = Copy()
    src.resumes = [HypervisorError("E_MIGRATION_FAILED", "no route to host", "")] * 1000
    mig = loop(src, Policy(postcopy=True), 64 * MIB)
    src.stats = MigrationStats(active=True, iteration=2, memory_processed=MEM // 2)
    with pytest.raises(Stranded) as e:
        mig.run()
    assert e.value.code == "E_MIGRATION_POSTCOPY_FAILED"
    assert "paused on the destination" in e.value.cause and "no route to host" in e.value.cause
    assert "--postcopy-resume vm1 qemu+tls://h2/system" in e.value.fix


def test_a_destination_that_lost_the_vm_strands_the_job_at_once_saying_so() -> None:
    """QEMU on the destination exits when the stream breaks before the switch-over package
    is loaded: nothing is left to resume, and the job says where the VM is."""
    src, dst = Copy(), Dest()
    src.fail = HypervisorError("E_MIGRATION_FAILED", "qemu unexpectedly closed the monitor", "")
    src.resumes = [None] * 10
    dst.state = None
    mig = loop(src, Policy(postcopy=True), 64 * MIB, dst=dst)
    with pytest.raises(Stranded) as e:
        run(mig, src, {"iteration": 1}, {"iteration": 2})
    assert e.value.code == "E_MIGRATION_POSTCOPY_LOST" and "resume" not in src.calls
    assert "paused on the source" in e.value.cause
    assert "virsh -c qemu+tls://h1/system destroy vm1" in e.value.fix


def test_a_cancel_in_post_copy_aborts_nothing() -> None:
    src, ctx = Copy(), Ctx()
    mig = loop(src, Policy(postcopy=True), 64 * MIB, ctx)

    def cancel_after_switch() -> None:
        while "post-copy" not in src.calls:
            time.sleep(0.01)
        ctx.cancel = True
        time.sleep(0.05)
        src.end.set()

    src.stats = MigrationStats(active=True, iteration=2, memory_processed=MEM)
    t = threading.Thread(target=cancel_after_switch)
    t.start()
    mig.run()
    t.join()
    assert "abort" not in src.calls
