"""``vm.migrate``: every kind of move as one job of steps with undo.

live          preflight → migrate → record
live+storage  preflight → prepare destination → migrate (disks mirrored) → record → cleanup
storage       preflight → prepare destination → copy and switch → record → cleanup
quick         preflight → define on destination → save → restore on destination → record → cleanup
              (Hyper-V: preflight → quick, one operation of the host's → record)
offline       preflight → move definition → record

If a step fails or the job is cancelled, the steps done are undone in reverse:
the VM ends running on the source with its disks untouched, and nothing is
left on the destination.
"""

from __future__ import annotations

import dataclasses

from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.migration import MoveKind, OnTimeout
from whimbrel.drivers import keeps_own_cluster
from whimbrel.errors import InvalidInput
from whimbrel.jobs.flow import Flow
from whimbrel.jobs.flows import cluster_move
from whimbrel.jobs.flows import migrate_steps as ms
from whimbrel.jobs.flows import move_copy as mc
from whimbrel.jobs.step import Step
from whimbrel.ops import OpVmMigrate
from whimbrel.preflight.finding import HostDrivers, PreflightFailed, blocking
from whimbrel.preflight.migration import Plan, move_kind, preflight
from whimbrel.store.repo import get_vm

LIVE_KINDS = (MoveKind.LIVE, MoveKind.LIVE_STORAGE, MoveKind.QUICK, MoveKind.OFFLINE)


def slot_locks(kind: MoveKind, source: str, dest: str) -> list[str]:
    """Counted locks: a host runs at most its limit of moves at once; more wait."""
    out = []
    if kind in LIVE_KINDS:
        out += [f"live-migration:{source}", f"live-migration:{dest}"]
    if kind in (MoveKind.LIVE_STORAGE, MoveKind.STORAGE):
        out += sorted({f"storage-migration:{source}", f"storage-migration:{dest}"})
    return out


def check_move(op: OpVmMigrate, s: Session, conns: HostDrivers) -> Plan:
    """Preflight of any move, to another cluster included (both clusters checked)."""
    if not op.to and not op.to_cluster:
        raise InvalidInput(
            "E_NO_DESTINATION",
            f"no destination given for VM {op.name}",
            "give --to HOST, or --to-cluster CLUSTER (with --to HOST to choose the node)",
        )
    if not op.to_cluster:
        return preflight(op, s, conns)
    if op.quick:
        raise InvalidInput(
            "E_INVALID_POLICY",
            "a quick migration does not cross clusters",
            "move it live (leave --quick out)",
        )
    return cluster_move.check(s, cluster_move.resolve(s, op), conns)


class VmMigrate(Flow):
    op_type = OpVmMigrate

    def vms(self, op: OpVmMigrate) -> list[str]:
        return [op.name]  # its slot locks need the bound op

    def locks(self, op: OpVmMigrate) -> list[str]:
        return [f"vm:{op.name}", *slot_locks(MoveKind(op.move), op.source, op.to)]

    def validate(self, op: OpVmMigrate, s: Session, conns: ConnectionPool) -> None:
        if op.on_timeout not in set(OnTimeout):
            raise InvalidInput(
                "E_INVALID_ON_TIMEOUT",
                f"--on-timeout {op.on_timeout!r} is not one of abort, force",
                "use --on-timeout abort (the VM stays on the source) or force",
            )
        bad = [
            f"{flag} {value}"
            for flag, value, ok in (
                ("--downtime-ms", op.downtime_ms, op.downtime_ms >= 1),
                ("--max-downtime-ms", op.max_downtime_ms, op.max_downtime_ms >= 1),
                ("--timeout-per-gib", op.timeout_s_per_gib, op.timeout_s_per_gib > 0),
                ("--bandwidth", op.bandwidth_mib_s, op.bandwidth_mib_s >= 0),
            )
            if not ok
        ]
        if bad:
            raise InvalidInput(
                "E_INVALID_POLICY",
                f"{', '.join(bad)}: downtimes and the timeout per GiB must be positive, "
                "the bandwidth zero (unlimited) or more",
                "give --downtime-ms ≥ 1, --max-downtime-ms ≥ 1, --timeout-per-gib > 0, "
                "--bandwidth ≥ 0",
            )
        plan = check_move(op, s, conns)
        if blocking(list(plan.findings)):
            raise PreflightFailed(list(plan.findings))

    def bind(self, op: OpVmMigrate, s: Session) -> OpVmMigrate:
        if op.to_cluster:
            op = cluster_move.resolve(s, op)
        vm = get_vm(s, op.name)
        src = vm.host.name if vm.host else op.to
        kind = move_kind(op, vm.state, src == op.to)
        native = vm.host is not None and keeps_own_cluster(vm.host.uri)
        return dataclasses.replace(op, source=src, move=str(kind), native_quick=native)

    def steps(self, op: OpVmMigrate) -> list[Step]:
        move = self._move_steps(op)
        return cluster_move.steps(op, move) if op.to_cluster else move

    def _move_steps(self, op: OpVmMigrate) -> list[Step]:
        kind = MoveKind(op.move)
        pre = ms.preflight_step(op)
        if kind == MoveKind.LIVE:
            return [pre, mc.live_step(op), ms.record_step(op)]
        if kind == MoveKind.LIVE_STORAGE:
            return [
                pre,
                ms.dest_volumes_step(op),
                mc.live_step(op),
                ms.record_step(op),
                ms.cleanup_step(op),
            ]
        if kind == MoveKind.STORAGE:
            return [
                pre,
                ms.dest_volumes_step(op),
                mc.storage_step(op),
                ms.record_step(op),
                ms.cleanup_step(op),
            ]
        if kind == MoveKind.QUICK and op.native_quick:
            return [pre, mc.native_quick_step(op), ms.record_step(op)]
        if kind == MoveKind.QUICK:
            return [pre, *mc.quick_steps(op), ms.record_step(op), mc.quick_cleanup_step(op)]
        return [pre, mc.live_step(op), ms.record_step(op)]  # offline: the definition moves
