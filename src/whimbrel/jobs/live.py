"""The live-migration control loop: predict, start, watch, push to convergence.

The manager owns this loop (DESIGN principle 5); the driver only starts the
copy, reports its figures and obeys tune/abort/pause.  The copy itself runs
on a thread of its own because the driver's ``migrate`` blocks until the end.
"""

from __future__ import annotations

import contextlib
import time
from dataclasses import replace

from whimbrel.domain.convergence import (
    ASSUMED_LINK_BPS,
    LINK_MARGIN,
    Prediction,
    predict,
)
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
from whimbrel.jobs.copy_thread import POLL_S, CopyThread
from whimbrel.jobs.postcopy import POSTCOPY_STALL_S, PostcopyRecovery
from whimbrel.jobs.step import JobContext

EVENT_WAIT_S = 2.0  # for the destination's "resumed" event after a post-copy
# The dirty rate last seen per VM (by a sample or during its last migration):
# reused for RECENT_S so that a VM moved again soon does not wait for a new
# one-second sample.
RECENT_S = 120.0
# Post-copy is armed (QEMU's capability set from the start) only for a guest that
# dirties at least this share of the usable link: armed, QEMU's final pause of a
# pre-copy grew in bench/migration.py (64 MiB @ 16 MiB/s: 317 ms at p95 against 92).
ARM_SHARE = 0.5
_recent: dict[str, tuple[float, int]] = {}


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


def remember(name: str, dirty_bps: int) -> None:
    """Keep the higher of a copy's dirty rate and the one known: QEMU counts each page
    once per pass, so over a long pass a guest rewriting a small set looks slow (64 MiB
    rewritten flat out over a 5 s pass reads 13 MiB/s), and a rate read that low would
    disarm the post-copy its next move needs."""
    seen = _recent.get(name)
    known = seen[1] if seen is not None and time.monotonic() - seen[0] < RECENT_S else 0
    _recent[name] = (time.monotonic(), max(known, dirty_bps))


def armed(pred: Prediction) -> bool:
    """May this copy need post-copy: predicted, or a dirty rate unknown or high enough
    that a pass could stall."""
    usable = pred.link_bps * LINK_MARGIN
    return pred.postcopy or pred.dirty_bps < 0 or pred.dirty_bps >= ARM_SHARE * usable


class LiveMigration(PostcopyRecovery):
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
        self.postcopy = req.policy.postcopy and armed(prediction)
        if req.policy.postcopy and not self.postcopy:  # converges with room: pre-copy only
            req = replace(req, policy=replace(req.policy, postcopy=False))
        self.req = req
        # Where post-copy is allowed it ends a stalled copy instead of a longer downtime.
        ladder = [] if self.postcopy else req.policy.downtime_ladder()
        self.ladder = [d for d in ladder if d > prediction.downtime_ms]
        self.downtime = prediction.downtime_ms
        self.deadline = req.policy.timeout_s_per_gib * max(size_bytes / GIB, 0.25)
        self.strategy: list[str] = list(prediction.strategy)
        self.best_remaining: int | None = None
        self.stalls = 0
        self.last_iteration = 0
        self.forced = False
        self.switched = False  # in post-copy: the VM runs on the destination
        self.moved_at = (0, 0.0)  # memory sent, and when it last grew, in post-copy
        self.paused_at = 0.0  # when the loop last paused a stalled post-copy
        self.last: MigrationStats | None = None  # the source's last figures

    def run(self) -> MigrationResult:
        req = replace(self.req, policy=replace(self.req.policy, downtime_ms=self.downtime))
        copy = CopyThread(lambda: self.src.migrate(self.name, req, self.pred.auto_converge))
        t0, wall0 = time.monotonic(), time.time()
        copy.start()
        cancelled = timed_out = False
        while copy.is_alive():
            copy.join(POLL_S)
            if not copy.is_alive():
                break
            if self.ctx.cancelled() and not cancelled and not self.switched:
                cancelled = True  # in post-copy the source no longer has the VM to keep
                self.src.abort_migration(self.name)
                continue
            if self._hung():
                break  # paused, and its call still waits on the dead link: recover now
            stats = self._look()
            if stats is None:
                continue
            if self.switched:
                self._watch_postcopy(stats)
                continue
            if stats.dirty_rate_pps:
                remember(self.name, stats.dirty_bps)
            if time.monotonic() - t0 > self.deadline and not (timed_out or self.forced):
                timed_out = self._on_timeout()
                continue
            self._converge(stats)
        if self.switched and (copy.error is not None or copy.is_alive()):
            stuck = WrongState("E_MIGRATION_FAILED", "the paused post-copy's call hung", "")
            self._recover(copy.error or stuck, req)
        elif copy.error is not None:
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
                    "allow post-copy (--postcopy, or 'cluster set --postcopy when-needed'), "
                    "a longer downtime (--max-downtime-ms), '--on-timeout force', or a quick "
                    "migration (--quick)",
                ) from copy.error
            raise copy.error
        if self.forced:
            self.dst.resume(self.name)  # forced by pausing: it arrived paused
        self.ctx.step_progress(1.0, "switchover", "switched over to the destination")
        result = self.dst.migration_result(self.name, self.strategy)
        if self.switched and result.total_ms == 0 and self.last is not None:
            # libvirt keeps no completed figures of a post-copy on the destination: the
            # source's last ones stand.
            result = replace(
                result,
                total_ms=int((time.monotonic() - t0) * 1000),
                downtime_ms=self.last.downtime_ms,
                memory_bytes=self.last.memory_processed,
                iterations=self.last.iteration,
            )
        if self.switched:
            result = self._paused(result, wall0)
        return result

    def _paused(self, result: MigrationResult, since: float) -> MigrationResult:
        """After a post-copy, libvirt's downtime runs from the guest's stop to the moment the
        switch-over package has crossed the link; the guest was paused only from its stop on
        the source to its run on the destination, which the hosts' events tell."""
        deadline = time.monotonic() + EVENT_WAIT_S
        while True:
            stop = self.src.last_event(self.name, "suspended")
            go = self.dst.last_event(self.name, "resumed")
            if stop is not None and go is not None and since <= stop <= go:
                pause = round((go - stop) * 1000)
                note = f"downtime from the hosts' events (libvirt's {result.downtime_ms} ms)"
                return replace(result, downtime_ms=pause, strategy=[*result.strategy, note])
            if time.monotonic() > deadline:
                return result  # the events did not come: libvirt's figure stands
            time.sleep(0.05)

    def _switch(self, why: str) -> None:
        self.src.tune_migration(self.name, postcopy=True)
        self.switched = True
        self.moved_at = (0, time.monotonic())
        self.strategy.append(why)

    def _watch_postcopy(self, st: MigrationStats) -> None:
        """Pause a post-copy whose stream stopped moving, so that it can be resumed."""
        sent, since = self.moved_at
        if st.memory_processed > sent:
            self.moved_at = (st.memory_processed, time.monotonic())
        elif time.monotonic() - since > POSTCOPY_STALL_S:
            self.moved_at = (sent, time.monotonic())
            self._pause_both()
            self.paused_at = time.monotonic()
            self.strategy.append(f"post-copy sent nothing for {POSTCOPY_STALL_S:.0f} s: paused")

    def _hung(self) -> bool:
        """Whether the loop paused a stalled post-copy long enough ago that the call it
        paused should have returned, and has not."""
        return bool(self.paused_at) and time.monotonic() - self.paused_at > POSTCOPY_STALL_S

    def _look(self) -> MigrationStats | None:
        """The source's figures of the migration under way, reported and kept."""
        stats = self._stats()
        if stats is None or not stats.active:
            return None
        self._report(stats)
        self.last = stats
        return stats

    def _stats(self) -> MigrationStats | None:
        try:
            return self.src.migration_stats(self.name)
        except WhimbrelError:
            return None  # the domain left the source between two polls

    def _report(self, st: MigrationStats) -> None:
        if st.disk_remaining > 0:
            phase = "disk copy"
        elif self.switched:
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
        if self.postcopy and self.pred.postcopy:
            self._switch("first pass sent: switched to post-copy, as predicted")
            return
        if self.postcopy and st.dirty_bps >= LINK_MARGIN * st.memory_bps > 0:
            self._switch(
                f"pass {st.iteration - 1}: the guest dirties {st.dirty_bps / MIB:.0f} MiB/s, "
                f"the link carries {st.memory_bps / MIB:.0f}: switched to post-copy"
            )
            return
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
        elif self.postcopy:
            self._switch(f"stalled at pass {st.iteration}: switched to post-copy")

    def _on_timeout(self) -> bool:
        """Abort (the VM stays on the source) or force the end, as configured."""
        if self.req.policy.on_timeout == OnTimeout.ABORT:
            self.strategy.append("completion timeout: aborted")
            self.src.abort_migration(self.name)
            return True
        if self.postcopy:
            self._switch("completion timeout: forced with post-copy")
        else:
            self.src.pause(self.name)
            self.strategy.append("completion timeout: forced by pausing the guest")
            self.forced = True
        return False
