"""The live-migration control loop: predict, start, watch, push to convergence.

The manager owns this loop (DESIGN principle 5); the driver only starts the
copy, reports its figures and obeys tune/abort/pause.  The copy itself runs
on a thread of its own because the driver's ``migrate`` blocks until the end.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from whimbrel.domain.convergence import ASSUMED_LINK_BPS, Prediction, predict
from whimbrel.domain.migration import (
    GIB,
    MIB,
    MigrationRequest,
    MigrationResult,
    MigrationStats,
    OnTimeout,
)
from whimbrel.drivers.base import HostDriver
from whimbrel.errors import Cancelled, WhimbrelError, WrongState
from whimbrel.jobs.step import JobContext

POLL_S = 0.25
# The dirty rate last seen per VM (by a sample or during its last migration):
# reused for RECENT_S so that a VM moved again soon does not wait for a new
# one-second sample.
RECENT_S = 120.0
_recent: dict[str, tuple[float, int]] = {}


class _Copy(threading.Thread):
    def __init__(self, fn: Callable[[], None]):
        super().__init__(name="migration-copy", daemon=True)
        self._fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # handed to the job's thread
            self.error = exc


def prediction_for(
    src: HostDriver, name: str, memory_bytes: int, link: tuple[int, str], req: MigrationRequest
) -> Prediction:
    """Sample the guest's dirty rate for one second and predict the copy."""
    link_bps, link_source = link
    if link_bps <= 0:
        link_bps, link_source = ASSUMED_LINK_BPS, "assumed: never measured between these hosts"
    if req.policy.bandwidth_mib_s:
        link_bps = min(link_bps, req.policy.bandwidth_mib_s * MIB)
        link_source += f", capped at {req.policy.bandwidth_mib_s} MiB/s"
    seen = _recent.get(name)
    if seen is not None and time.monotonic() - seen[0] < RECENT_S:
        dirty = seen[1]
    else:
        dirty = src.dirty_rate(name, 1)
        _recent[name] = (time.monotonic(), dirty)
    return predict(memory_bytes, dirty, link_bps, link_source, req.policy)


class LiveMigration:
    """One run of the loop.  ``run`` returns the destination's final figures."""

    def __init__(
        self,
        ctx: JobContext,
        src: HostDriver,
        dst: HostDriver,
        name: str,
        req: MigrationRequest,
        prediction: Prediction,
        size_bytes: int,
    ):
        self.ctx, self.src, self.dst, self.name, self.req = ctx, src, dst, name, req
        self.pred = prediction
        self.ladder = [d for d in req.policy.downtime_ladder() if d > prediction.downtime_ms]
        self.downtime = prediction.downtime_ms
        self.deadline = req.policy.timeout_s_per_gib * max(size_bytes / GIB, 0.25)
        self.strategy: list[str] = list(prediction.strategy)
        self.best_remaining: int | None = None
        self.stalls = 0
        self.last_iteration = 0
        self.forced = False

    def run(self) -> MigrationResult:
        req = replace(self.req, policy=replace(self.req.policy, downtime_ms=self.downtime))
        copy = _Copy(lambda: self.src.migrate(self.name, req, self.pred.auto_converge))
        t0 = time.monotonic()
        copy.start()
        cancelled = timed_out = False
        while copy.is_alive():
            copy.join(POLL_S)
            if not copy.is_alive():
                break
            if self.ctx.cancelled() and not cancelled:
                cancelled = True
                self.src.abort_migration(self.name)
                continue
            stats = self._stats()
            if stats is None or not stats.active:
                continue
            self._report(stats)
            if stats.dirty_rate_pps:
                _recent[self.name] = (time.monotonic(), stats.dirty_bps)
            if time.monotonic() - t0 > self.deadline and not (timed_out or self.forced):
                timed_out = self._on_timeout()
                continue
            self._converge(stats)
        if copy.error is not None:
            if self.forced:  # paused to force the end, which failed: let it run again
                with contextlib.suppress(WhimbrelError):
                    self.src.resume(self.name)
            if cancelled:
                raise Cancelled(
                    "E_JOB_CANCELLED",
                    f"the migration of VM {self.name} was cancelled; it still runs on the source",
                    "run it again when ready",
                ) from copy.error
            if timed_out:
                raise WrongState(
                    "E_MIGRATION_TIMEOUT",
                    f"VM {self.name} did not converge within {self.deadline:.0f} s "
                    f"({self.req.policy.timeout_s_per_gib:g} s per GiB); the migration was "
                    "aborted and the VM still runs on the source",
                    "allow post-copy (--postcopy), a longer downtime (--max-downtime-ms), "
                    "'--on-timeout force', or a quick migration (--quick)",
                ) from copy.error
            raise copy.error
        if self.forced:
            self.dst.resume(self.name)  # forced by pausing: it arrived paused
        self.ctx.step_progress(1.0, "switchover", "switched over to the destination")
        return self.dst.migration_result(self.name, self.strategy)

    def _stats(self) -> MigrationStats | None:
        try:
            return self.src.migration_stats(self.name)
        except WhimbrelError:
            return None  # the domain left the source between two polls

    def _report(self, st: MigrationStats) -> None:
        if st.disk_remaining > 0:
            phase = "disk copy"
        elif st.postcopy:
            phase = "post-copy"
        else:
            phase = f"memory pass {max(1, st.iteration)}"
        done = st.memory_processed + st.disk_processed
        frac = done / max(1, done + st.remaining)
        rate = st.memory_bps + st.disk_bps
        # Time left at the current rate, counting what the guest dirties meanwhile.
        eta = st.remaining / max(1, rate - st.dirty_bps) if rate > st.dirty_bps else None
        self.ctx.step_progress(
            frac,
            phase,
            f"{phase}: {st.remaining / MIB:.0f} MiB left at {rate / MIB:.0f} MiB/s"
            + (f" (~{eta:.0f} s)" if eta is not None else " (not shrinking)")
            + f", guest dirtying {st.dirty_bps / MIB:.0f} MiB/s, downtime limit {self.downtime} ms",
            remaining_mib=round(st.remaining / MIB, 1),
            eta_s=None if eta is None else round(eta, 1),
            rate_mib_s=round(rate / MIB, 1),
            dirty_mib_s=round(st.dirty_bps / MIB, 1),
            iteration=st.iteration,
            downtime_limit_ms=self.downtime,
            strategy=self.strategy,
        )

    def _converge(self, st: MigrationStats) -> None:
        """After each memory pass: if what remains did not shrink, push harder."""
        if st.iteration <= self.last_iteration or st.iteration < 2 or st.disk_remaining:
            return
        self.last_iteration = st.iteration
        if self.best_remaining is None or st.memory_remaining < 0.9 * self.best_remaining:
            self.best_remaining = st.memory_remaining
            self.stalls = 0
            return
        self.stalls += 1
        if self.stalls < 2:
            return
        self.stalls = 0
        if self.ladder:
            self.downtime = self.ladder.pop(0)
            self.src.tune_migration(self.name, downtime_ms=self.downtime)
            self.strategy.append(f"stalled at pass {st.iteration}: downtime {self.downtime} ms")
        elif self.req.policy.postcopy and not st.postcopy:
            self.src.tune_migration(self.name, postcopy=True)
            self.strategy.append(f"stalled at pass {st.iteration}: switched to post-copy")

    def _on_timeout(self) -> bool:
        """Abort (the VM stays on the source) or force the end, as configured."""
        if self.req.policy.on_timeout == OnTimeout.ABORT:
            self.strategy.append("completion timeout: aborted")
            self.src.abort_migration(self.name)
            return True
        if self.req.policy.postcopy:
            self.src.tune_migration(self.name, postcopy=True)
            self.strategy.append("completion timeout: forced with post-copy")
        else:
            self.src.pause(self.name)
            self.strategy.append("completion timeout: forced by pausing the guest")
        self.forced = True
        return False
