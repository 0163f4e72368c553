"""A post-copy that broke: observe both hosts, pause it on both, resume it, or say where
the VM is.  Mixed into the live-migration loop (:mod:`whimbrel.jobs.live`), whose state
it shares."""

from __future__ import annotations

import contextlib
import time

from whimbrel.domain.migration import MigrationRequest, MigrationStats
from whimbrel.domain.vm import ACTIVE, VmState
from whimbrel.drivers.base import HostDriver
from whimbrel.errors import NotFound, Stranded, WhimbrelError, WrongState
from whimbrel.jobs.copy_thread import POLL_S, CopyThread
from whimbrel.jobs.step import JobContext

# A post-copy that moves no page for this long is paused, so that it can be resumed
# (a stream whose link went down fails only when TCP gives up, many minutes later).
POSTCOPY_STALL_S = 5.0
# How long a paused post-copy is tried again before the job hands it to the administrator.
POSTCOPY_RECOVER_S = 120.0
POSTCOPY_RETRY_S = 2.0


class PostcopyRecovery:
    """What the loop knows that recovery reads and writes."""

    ctx: JobContext
    src: HostDriver
    dst: HostDriver
    name: str
    req: MigrationRequest
    strategy: list[str]
    moved_at: tuple[int, float]
    paused_at: float
    last: MigrationStats | None

    def _look(self) -> MigrationStats | None:
        raise NotImplementedError

    def _watch_postcopy(self, st: MigrationStats) -> None:
        raise NotImplementedError

    def _hung(self) -> bool:
        raise NotImplementedError

    def _recover(self, error: BaseException, req: MigrationRequest) -> None:
        """Resume a broken post-copy until it ends, or strand the job saying where things are.

        Nothing can be undone: the guest runs on the destination from pages that are
        partly still on the source, so both hosts must stay up until the rest arrives."""
        why = error.cause if isinstance(error, WhimbrelError) else str(error)
        deadline = time.monotonic() + POSTCOPY_RECOVER_S
        tries = 0
        while time.monotonic() < deadline:
            seen = self._observe()
            if seen == "ended":
                self.strategy.append(
                    f"post-copy ended on its own after it broke ({why}): the source let the "
                    "VM go and the destination runs it"
                )
                return
            if seen == "lost":
                raise self._lost(why, error) from error
            self._pause_both()  # a side that has not seen the break yet refuses to resume
            tries += 1
            self.ctx.step_progress(
                0.99,
                "post-copy recovery",
                f"post-copy broke ({why}); the VM waits paused on the destination; "
                f"resuming it, try {tries}",
            )
            failed = self._attempt(req, deadline)
            if failed is None:
                self.strategy.append(f"post-copy broke; resumed after {tries} tries")
                return
            why = failed.cause if isinstance(failed, WhimbrelError) else str(failed)
            time.sleep(POSTCOPY_RETRY_S)
        raise Stranded(
            "E_MIGRATION_POSTCOPY_FAILED",
            f"the post-copy of VM {self.name} broke and could not be resumed for "
            f"{POSTCOPY_RECOVER_S:.0f} s ({why}): the VM is paused on the destination "
            f"{self.req.dest_uri} and part of its memory is still on the source only",
            "keep both hosts and their libvirt up (powering either off loses the VM's state), "
            "mend the migration link between them, then resume the copy with the move's own "
            f"flags: 'virsh -c {self.src.uri} migrate --live --p2p --postcopy --postcopy-resume "
            f"{self.name} {self.req.dest_uri}' (without --p2p for a managed move); "
            "'whimbrel host refresh' then records where it runs",
            str(error),
        ) from error

    def _attempt(self, req: MigrationRequest, deadline: float) -> BaseException | None:
        """One resume, watched as the copy was: a resume blocks until the post-copy ends, and
        one that moves nothing is paused again rather than left waiting on a dead link."""
        attempt = CopyThread(lambda: self.src.resume_postcopy(self.name, req))
        self.moved_at = (self.last.memory_processed if self.last else 0, time.monotonic())
        self.paused_at = 0.0
        attempt.start()
        while attempt.is_alive() and time.monotonic() < deadline:
            attempt.join(POLL_S)
            stats = self._look() if attempt.is_alive() else None
            if stats is not None:
                self._watch_postcopy(stats)
            if self._hung():
                break  # paused again and the call still hangs: the next try
        if attempt.is_alive():
            return WrongState("E_MIGRATION_POSTCOPY_FAILED", "the resume did not return", "")
        return attempt.error

    def _pause_both(self) -> None:
        """Pause the post-copy on both hosts: a cut link breaks it for each side only when
        its TCP gives up, and a resume needs both sides paused."""
        for host in (self.src, self.dst):
            with contextlib.suppress(WhimbrelError):  # paused or failed on its own already
                host.pause_postcopy(self.name)

    def _observe(self) -> str:
        """What the hosts say of a broken post-copy: "ended" (the source let the VM go, which
        QEMU does only once every page is sent, and the destination runs it), "lost" (the
        destination no longer has the VM: its QEMU exits when the stream breaks before the
        switch-over package is loaded) or "broken" (resume it; also when a host cannot say)."""
        try:
            if self.dst.domain(self.name).state != VmState.RUNNING:
                return "broken"
        except NotFound:
            return "lost"
        except WhimbrelError:
            return "broken"
        try:
            return "broken" if self.src.domain(self.name).state in ACTIVE else "ended"
        except NotFound:
            return "ended"
        except WhimbrelError:
            return "broken"

    def _lost(self, why: str, error: BaseException) -> Stranded:
        dest = self.req.dest_uri
        return Stranded(
            "E_MIGRATION_POSTCOPY_LOST",
            f"the post-copy of VM {self.name} broke ({why}) and the destination {dest} no "
            "longer has the VM (its QEMU exited); the VM is paused on the source in 'post-copy "
            "failed' and cannot go on there, since it may have run on the destination",
            f"power it off on the source ('virsh -c {self.src.uri} destroy {self.name}') and "
            f"start it again ('whimbrel vm start {self.name}'): its memory state is lost, "
            "its disks are intact, as after a host failure",
            str(error),
        )
