"""Host liveness from two independent channels, and the state it proves.

The management channel is the monitor's polls of libvirt; the storage channel is
the heartbeat each host writes on its cluster's shared storage
(:mod:`whimbrel.ha.heartbeat`).  A host is ``lost`` only when both have been
silent for the cluster's detection time; silent on management alone it is ``not
responding`` (a hung libvirtd, a cut management link) or ``isolated`` (its own
heartbeat says it reaches no peer), and its VMs are left alone.  Every verdict
carries its evidence, which ``host list`` shows and the failover job records.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from whimbrel.domain.host import HostState
from whimbrel.ha.heartbeat import Record, read_record

Clock = Callable[[], float]


@dataclass
class _Mgmt:
    ok: bool
    last_ok: float
    reason: str = ""


@dataclass
class _Storage:
    seq: int
    changed: float  # reader's clock when the sequence was last seen to move
    record: Record


@dataclass(frozen=True)
class Verdict:
    state: HostState
    evidence: str
    record: Record | None = None  # the last heartbeat seen, if any

    @property
    def seq(self) -> int:
        return self.record.seq if self.record is not None else -1

    @property
    def stopped(self) -> tuple[str, ...]:
        """The HA VMs an isolated host reports it stopped itself."""
        if self.state != HostState.ISOLATED or self.record is None:
            return ()
        return tuple(self.record.stopped)


class Liveness:
    """What the manager knows of each host's two channels, on its own clock."""

    def __init__(self, overdue_s: float, clock: Clock = time.monotonic) -> None:
        # A poll unanswered for this long counts as silence even before it fails
        # (a hung libvirtd holds the call until libvirt's keepalive gives up).
        self.overdue_s = overdue_s
        self.clock = clock
        self._mgmt: dict[str, _Mgmt] = {}
        self._storage: dict[str, _Storage] = {}

    def management(self, host: str, ok: bool, reason: str = "") -> None:
        now = self.clock()
        m = self._mgmt.get(host)
        if m is None:  # first word of a host: silence is counted from now
            m = self._mgmt[host] = _Mgmt(ok, now, reason)
        m.ok, m.reason = ok, reason
        if ok:
            m.last_ok = now

    def mgmt_silent(self, host: str) -> float:
        """Seconds the management channel has been silent; 0 while it answers."""
        m = self._mgmt.get(host)
        if m is None:
            return 0.0
        since = self.clock() - m.last_ok
        return since if (not m.ok or since > self.overdue_s) else 0.0

    def storage(self, host: str, directory: Path | None) -> None:
        """Read the host's heartbeat now and note whether its sequence moved."""
        record = read_record(directory, host) if directory is not None else None
        if record is None:
            return  # keep the last one seen: an unreadable file is not a beat
        now = self.clock()
        s = self._storage.get(host)
        if s is None or record.seq != s.seq:
            self._storage[host] = _Storage(record.seq, now, record)

    def verdict(self, host: str, detection_s: float) -> Verdict:
        silent = self.mgmt_silent(host)
        if silent == 0.0:
            return Verdict(HostState.CONNECTED, "management connection answers")
        m = self._mgmt[host]
        why = f"management silent {silent:.1f} s ({m.reason or 'poll unanswered'})"
        s = self._storage.get(host)
        if s is None:
            return Verdict(
                HostState.NOT_RESPONDING,
                f"{why}; no storage heartbeat to read, so nothing proves it dead: its VMs "
                "are left alone (run whimbrel-heartbeat on the host, or power it off and "
                "'whimbrel host fence confirm')",
            )
        hb_silent = self.clock() - s.changed
        rec = s.record
        beat = f"storage heartbeat seq {rec.seq} written {rec.written_at}"
        if hb_silent < detection_s:
            alive = f"{beat}, moved {hb_silent:.1f} s ago"
            if hb_silent > 3 * rec.interval_s:
                alive = f"{beat}, silent {hb_silent:.1f} s (lost after {detection_s:g} s)"
            if rec.isolated:
                cut = ", ".join(p for p, ok in rec.peers.items() if not ok)
                return Verdict(
                    HostState.ISOLATED,
                    f"{why}; {alive}; it reaches none of its peers ({cut}) since "
                    f"{rec.isolated_since}",
                    rec,
                )
            return Verdict(
                HostState.NOT_RESPONDING,
                f"{why}; {alive}: the host is alive, its VMs are left alone",
                rec,
            )
        if silent < detection_s:
            return Verdict(
                HostState.NOT_RESPONDING,
                f"{why}; {beat}, silent {hb_silent:.1f} s (lost after {detection_s:g} s)",
                rec,
            )
        return Verdict(
            HostState.LOST,
            f"{why}; {beat}, silent {hb_silent:.1f} s: both channels silent for "
            f"{min(silent, hb_silent):.1f} s (detection time {detection_s:g} s)",
            rec,
        )
