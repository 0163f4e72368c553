"""Failover (unplanned downtime in VMM's highly available VMs): fence a lost host, restart its
HA VMs elsewhere.

The HA monitor submits ``host.failover`` when a host has been lost for its
grace period.  The job first fences the host (or takes the administrator's
word that it is off), because only a host proven off cannot still be writing
to the disks; then it restarts each HA VM, highest priority first, on the
best-rated other node of its cluster, as one ``vm.recover`` child job each.
Memory state is lost, as in a cluster failover: the VMs boot from their shared disks.
The disk leases are the second guard: a start whose disk is still held fails
with E_DISK_LOCKED, the job reports it, and the monitor tries again later.
"""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime

from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.host import HostState
from whimbrel.domain.vm import VmState
from whimbrel.errors import Conflict, InvalidInput, NotFound, WrongState
from whimbrel.ha.fence import check_config, fence
from whimbrel.ha.guards import check_ha_settings, fence_refusal, ha_settings
from whimbrel.ha.heartbeat import read_record
from whimbrel.ha.storage import heartbeat_dir
from whimbrel.jobs.children import Child, outcome, reattach, run_children
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.flows.vm_common import spec_of
from whimbrel.jobs.step import FnStep, JobContext, Observed, Step, StepResult, Truth
from whimbrel.ops import OpHaSet, OpHostFailover, OpHostFenceSet, OpVmRecover
from whimbrel.placement.inventory import sites
from whimbrel.placement.refresh import refresh
from whimbrel.placement.turns import place_in_turn, restart_order
from whimbrel.store.models import Lease, Vm
from whimbrel.store.repo import (
    busy_vms,
    cluster_of_vm,
    get_host,
    get_vm,
    note_event,
    set_host_state,
    vms_on,
)

# A VM in one of these states on a lost host is down and waits for its restart.
DOWN = {VmState.UNKNOWN, VmState.MISSING, VmState.CRASHED}


def stranded(s: Session, host: str) -> list[Vm]:
    """The HA VMs of ``host`` that must restart elsewhere, in restart order."""
    vms = vms_on(s, get_host(s, host))
    busy = busy_vms(s)  # a VM a job holds (leaving for another cluster, say) is that job's
    out = [v for v in vms if v.ha and v.ha_priority > 0 and v.state in DOWN and v.name not in busy]
    return sorted(out, key=restart_order)


class HostFenceSet(Flow):
    op_type = OpHostFenceSet

    def locks(self, op: OpHostFenceSet) -> list[str]:
        return [f"host:{op.name}"]

    def validate(self, op: OpHostFenceSet, s: Session, conns: ConnectionPool) -> None:
        get_host(s, op.name)
        if op.agent:
            check_config(op.name, {"agent": op.agent, "options": op.options})

    def steps(self, op: OpHostFenceSet) -> list[Step]:
        def put(ctx: JobContext) -> StepResult:
            """Undo: the previous settings come back."""
            with ctx.sessions.begin() as s:
                h = get_host(s, op.name)
                old = dict(h.fence)
                h.fence = {"agent": op.agent, "options": dict(op.options)} if op.agent else {}
            return {"old": old}

        def back(ctx: JobContext, r: StepResult) -> None:
            with ctx.sessions.begin() as s:
                get_host(s, op.name).fence = (r or {}).get("old", {})

        return [FnStep("set", f"set the fence agent of host {op.name}", put, back)]


class HaSet(Flow):
    op_type = OpHaSet

    def locks(self, op: OpHaSet) -> list[str]:
        return ["ha-settings"]

    def validate(self, op: OpHaSet, s: Session, conns: ConnectionPool) -> None:
        if op.fence_cap is None and op.fence_window_s is None:
            raise InvalidInput("E_NOTHING_TO_SET", "no setting given", "give at least one setting")
        check_ha_settings(op.fence_cap, op.fence_window_s)

    def steps(self, op: OpHaSet) -> list[Step]:
        given = {
            k: v
            for k, v in (("fence_cap", op.fence_cap), ("fence_window_s", op.fence_window_s))
            if v is not None
        }

        def put(ctx: JobContext, values: dict[str, int]) -> StepResult:
            """Undo: the old values come back."""
            with ctx.sessions.begin() as s:
                row = ha_settings(s, for_update=True)
                old = {k: getattr(row, k) for k in values}
                for k, v in values.items():
                    setattr(row, k, v)
            return {"old": old}

        def back(ctx: JobContext, r: StepResult) -> None:
            put(ctx, dict((r or {}).get("old", {})))

        what = ", ".join(f"{k.replace('_', ' ')} {v}" for k, v in given.items())
        return [FnStep("set", f"failover guards: {what}", lambda ctx: put(ctx, given), back)]


# One fencing decision at a time: the cap is read and the fence recorded together
# (this lock within a manager, the HA settings row's lock between replicas).
_FENCING = threading.Lock()
PROBE_S = 5.0


class HostFailover(Flow):
    op_type = OpHostFailover
    waits_for_children = True

    def locks(self, op: OpHostFailover) -> list[str]:
        return [f"failover:{op.name}"]

    def validate(self, op: OpHostFailover, s: Session, conns: ConnectionPool) -> None:
        h = get_host(s, op.name)
        if h.state == HostState.CONNECTED:
            raise WrongState(
                "E_HOST_CONNECTED",
                f"host {op.name} is connected: there is nothing to fail over",
                "move its VMs with 'whimbrel vm migrate' or 'host maintenance start' instead",
            )
        if not stranded(s, op.name):
            raise NotFound(
                "E_NOTHING_TO_RECOVER",
                f"host {op.name} has no HA VM waiting for a restart",
                "nothing to do",
            )

    def steps(self, op: OpHostFailover) -> list[Step]:
        def verify(ctx: JobContext) -> StepResult:
            """Both channels once more, right before anything is done.  Undo: none."""
            ctx.step_progress(0.0, "verify", f"checking host {op.name} once more")
            return check_still_down(ctx, op)

        def do_fence(ctx: JobContext) -> StepResult:
            """Undo: none; a host switched off stays off until someone starts it."""
            if op.stopped:
                proof = {
                    "agent": "none",
                    "proof": f"not fenced: host {op.name} is alive on storage, isolated, and "
                    f"reports it stopped {', '.join(op.stopped)} itself",
                }
                return {"evidence": op.evidence, **proof}
            with _FENCING, ctx.sessions() as s:
                # Between replicas: the 'fencing' row stays locked until the fence is recorded.
                s.get_one(Lease, "fencing", with_for_update=True)
                h = get_host(s, op.name)
                config = dict(h.fence)
                why = "" if op.confirmed_off or op.approved else fence_refusal(s, h, ctx.job_id)
                if why:
                    raise Conflict(
                        "E_FENCE_CAP",
                        f"host {op.name} is lost but not fenced automatically: {why}",
                        f"make sure it is really dead, then 'whimbrel host fence confirm "
                        f"{op.name}' (its agent fences it) or raise the cap with "
                        "'whimbrel failover set --fence-cap N'",
                    )
                if op.confirmed_off and not op.approved:
                    proof = {
                        "agent": "administrator",
                        "proof": "confirmed off by the administrator",
                    }
                else:
                    ctx.step_progress(0.0, "fence", f"fencing host {op.name}")
                    ctx.keep_claim()  # a replica that lost this job fences nothing
                    opened = ctx.open_secrets(s, dict(config.get("options", {})))
                    proof = fence(op.name, {**config, "options": opened}).to_dict()
                mark_fenced(ctx, op.name, proof["proof"])
            ctx.progress("fence", 0, f"host {op.name} is off: {proof['proof']}", fenced=proof)
            return {"evidence": op.evidence, "epoch": op.epoch, **proof}

        def restart(ctx: JobContext) -> StepResult:
            """Undo: none; each restart undoes itself if it fails."""
            kids = _children(ctx, op.name, op.stopped)
            run_children(ctx, kids, "restart", stop_on_failure=False)
            bad = [c for c in kids if not c.ok]
            if bad:
                raise Conflict(
                    "E_FAILOVER_INCOMPLETE",
                    f"{len(bad)} of {len(kids)} HA VM(s) of host {op.name} did not restart: "
                    + "; ".join(
                        f"{c.vm}: {c.error.get('code', c.state)} {c.error.get('cause', c.message)}"
                        for c in bad
                    ),
                    "the HA monitor tries again; free capacity in the cluster, or if a disk is "
                    "still locked, make sure the lost host is really off",
                )
            return {"restarted": [{"vm": c.vm, "to": c.to, "job": c.job} for c in kids]}

        def restarted(ctx: JobContext) -> Observed:
            kids = reattach(ctx, "restart")
            if kids is None:  # stopped before it recorded any: it restarts what is left
                with ctx.sessions() as s:
                    left = [v.name for v in stranded(s, op.name)]
                why = f"no restart recorded; still down: {', '.join(left) or 'none'}"
                return Observed(Truth.NOT_DONE, why)
            truth, evidence = outcome(kids, "restart")
            done = [{"vm": c.vm, "to": c.to, "job": c.job} for c in kids or []]
            return Observed(truth, evidence, {"restarted": done})

        return [
            FnStep(VERIFY, f"check that host {op.name} is still silent on both channels", verify),
            FnStep(FENCE, f"power host {op.name} off and prove it", do_fence),
            FnStep(
                RESTART,
                f"restart the HA VMs of host {op.name}",
                restart,
                weight=10,
                observe=restarted,
                redo=True,
            ),
        ]


VERIFY, FENCE, RESTART = "verify", "fence", "restart"


def check_still_down(ctx: JobContext, op: OpHostFailover) -> StepResult:
    """Raise E_HOST_ALIVE if either channel shows the host alive (for an isolated host
    with stopped VMs: unless its heartbeat still says it stopped them)."""
    with ctx.sessions() as s:
        c = get_host(s, op.name).cluster
        hb = heartbeat_dir(c) if c is not None else None
    seen: dict[str, object] = {}
    if op.heartbeat_seq >= 0 and hb is not None:
        first = read_record(hb, op.name)
        time.sleep(2 * (first.interval_s if first else 1.0))  # give a live host time to beat
        rec = read_record(hb, op.name)
        seen["heartbeat_seq"] = rec.seq if rec else None
        if op.stopped:
            missing = [v for v in op.stopped if rec is None or v not in rec.stopped]
            if missing:
                raise _alive(
                    op.name, f"its heartbeat no longer reports {', '.join(missing)} stopped"
                )
            return {"heartbeat": "isolated, VMs stopped by the host", **seen}
        if rec is not None and rec.seq != op.heartbeat_seq:
            raise _alive(
                op.name, f"its storage heartbeat moved (seq {op.heartbeat_seq} -> {rec.seq})"
            )
    answer = ctx.probe(op.name, PROBE_S)
    if not answer and not op.stopped:
        raise _alive(op.name, "its management connection answers again")
    seen["management"] = answer or "answers"
    return seen


def _alive(host: str, why: str) -> WrongState:
    return WrongState(
        "E_HOST_ALIVE",
        f"host {host} is not dead: {why}; nothing was fenced or restarted",
        "nothing to do: its VMs are left where they are; 'whimbrel host show' tells its state",
    )


def mark_fenced(ctx: JobContext, host: str, proof: str) -> None:
    with ctx.sessions.begin() as s:
        h = get_host(s, host)
        set_host_state(h, HostState.FENCED, f"fenced: {proof}")
        h.fenced_at = datetime.now(UTC)
        note_event(h, f"fenced: {proof}")


def _children(ctx: JobContext, host: str, only: tuple[str, ...] = ()) -> list[Child]:
    """One restart per stranded VM (of ``only``, if given), each on the best node left
    after the ones before."""
    kids: list[Child] = []
    with ctx.sessions() as s:
        down = [v for v in stranded(s, host) if not only or v.name in only]
        turns, _ = place_in_turn(s, down, sites(s))
        for t in turns:
            to = t.best.host if t.best is not None else ""  # "": the child says why it cannot
            kids.append(Child(t.vm.name, "restart", OpVmRecover(t.vm.name, to, host), to))
    return kids


class VmRecover(Flow):
    op_type = OpVmRecover

    def locks(self, op: OpVmRecover) -> list[str]:
        return [f"vm:{op.name}"]

    def validate(self, op: OpVmRecover, s: Session, conns: ConnectionPool) -> None:
        vm = get_vm(s, op.name)
        if not op.to:
            raise Conflict(
                "E_NO_HOST_FOR_RESTART",
                f"no node of cluster {cluster_of_vm(vm)} can take VM {op.name} "
                f"({vm.memory_mib} MiB)",
                "free memory in the cluster or add a node; 'whimbrel vm place' shows why",
            )
        if vm.host is None or vm.host.name != op.source or vm.state not in DOWN:
            raise WrongState(
                "E_VM_STATE",
                f"VM {op.name} is {vm.state} on {vm.host.name if vm.host else 'no host'}, "
                f"not down on {op.source}",
                "nothing to recover",
            )
        get_host(s, op.to)

    def steps(self, op: OpVmRecover) -> list[Step]:
        def define(ctx: JobContext) -> StepResult:
            """Undo: undefine it on the new node."""
            with ctx.sessions() as s:
                spec = spec_of(get_vm(s, op.name))
            ctx.driver(op.to).define(spec)
            return {"host": op.to}

        def undefine(ctx: JobContext, r: StepResult) -> None:
            ctx.driver(op.to).undefine(op.name)

        def start(ctx: JobContext) -> StepResult:
            """Undo: power it off.  A disk still leased by the lost host fails here."""
            ctx.driver(op.to).start(op.name)
            return {"host": op.to}

        def stop(ctx: JobContext, r: StepResult) -> None:
            ctx.driver(op.to).power_off(op.name)

        def record(ctx: JobContext) -> StepResult:
            """Undo: the VM belongs to its lost host again."""
            state = ctx.driver(op.to).domain(op.name).state
            with ctx.sessions.begin() as s:
                vm = get_vm(s, op.name)
                vm.host, vm.state = get_host(s, op.to), state
                refresh(s, f"VM {op.name} restarted on {op.to}", cluster_of_vm(vm))
            return {"host": op.to, "state": str(state)}

        def unrecord(ctx: JobContext, r: StepResult) -> None:
            with ctx.sessions.begin() as s:
                vm = get_vm(s, op.name)
                vm.host, vm.state = get_host(s, op.source), VmState.UNKNOWN

        return [
            FnStep("define", f"define VM {op.name} on {op.to}", define, undefine),
            FnStep("start", f"start VM {op.name} on {op.to} from its disks", start, stop),
            FnStep("record", f"record VM {op.name} on {op.to}", record, unrecord),
        ]


FLOWS: list[Flow] = [HostFenceSet(), HaSet(), HostFailover(), VmRecover()]
