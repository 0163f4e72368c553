"""Will pre-copy converge?  A prediction made before the memory copy starts.

Every anchor detects non-convergence after the fact (research/anchors.md §3.1).
Pre-copy ends when what is left to send fits in the allowed downtime.  While the
guest dirties memory more slowly than the link carries it, each pass is shorter
than the last and the copy converges at any downtime.  When it dirties as fast
as the link or faster, what remains after a pass stays about one second of
dirtying, so the copy ends only if the downtime allows sending that much.

Where post-copy is allowed it replaces any downtime above the target: one
pre-copy pass sends what the guest does not rewrite, then the guest runs on the
destination and pulls the rest.  Its risk, stated wherever it is chosen: until
the last page has arrived the VM's memory is split between the two hosts, so a
host or link that fails then leaves it paused until the link is back.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from whimbrel.domain.migration import MIB, Policy

ASSUMED_LINK_BPS = 125_000_000  # 1 Gbit/s, when no migration between the hosts was measured
LINK_MARGIN = 0.8  # the link never delivers all of its rate to one stream
_SLOW = 1.5  # pre-copy this much longer than post-copy: post-copy, where allowed


def _postcopy_strategy(why: str) -> list[str]:
    return [
        f"one pre-copy pass, then post-copy ({why}; until the last page arrives, "
        "a failed host or link pauses the VM)"
    ]


@dataclass(frozen=True)
class Prediction:
    memory_bytes: int
    dirty_bps: int
    link_bps: int
    link_source: str
    converges: bool
    downtime_ms: int  # the downtime to start with
    needed_ms: int
    auto_converge: bool
    strategy: list[str] = field(default_factory=list)
    eta_s: float = 0.0
    postcopy: bool = False  # switch to post-copy once the first pass is sent

    @property
    def verdict(self) -> str:
        if self.dirty_bps < 0:
            return "dirty rate unknown: pre-copy, escalating the downtime if it stalls"
        head = (
            f"guest dirties {self.dirty_bps / MIB:.0f} MiB/s, link {self.link_bps / MIB:.0f} MiB/s"
            f" ({self.link_source})"
        )
        if self.postcopy:
            return f"{head}: {self.strategy[0]}; about {self.eta_s:.1f} s"
        if self.converges:
            return (
                f"{head}: converges with {self.downtime_ms} ms downtime in about {self.eta_s:.1f} s"
            )
        return f"{head}: pre-copy alone would need {self.needed_ms} ms downtime; " + ", ".join(
            self.strategy
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "dirty_mib_s": round(self.dirty_bps / MIB, 1),
            "link_mib_s": round(self.link_bps / MIB, 1),
            "link_source": self.link_source,
            "converges": self.converges,
            "downtime_ms": self.downtime_ms,
            "needed_ms": self.needed_ms,
            "strategy": self.strategy,
            "eta_s": round(self.eta_s, 1),
            "postcopy": self.postcopy,
            "verdict": self.verdict,
        }


def predict(
    memory_bytes: int, dirty_bps: int, link_bps: int, link_source: str, policy: Policy
) -> Prediction:
    made = partial(Prediction, memory_bytes, dirty_bps, link_bps, link_source)
    usable = max(1, int(link_bps * LINK_MARGIN))
    first_pass = memory_bytes / usable
    # Post-copy's plan: after one pass, what the guest rewrote meanwhile follows on demand.
    post_eta = first_pass + min(memory_bytes, max(0, dirty_bps) * first_pass) / usable
    if dirty_bps < usable:  # converges; unknown (-1) too: the live policy escalates on stalls
        eta = first_pass
        if dirty_bps > 0:
            ratio = dirty_bps / usable
            # Passes shrink by ``ratio`` until one fits into the downtime.
            budget = usable * policy.downtime_ms / 1000
            passes = max(1, math.ceil(math.log(budget / memory_bytes, ratio)))
            eta = first_pass * (1 - ratio ** min(passes, 50)) / (1 - ratio)
        d = policy.downtime_ms
        if not (policy.postcopy and eta > _SLOW * post_eta):
            return made(True, d, d, False, ["pre-copy"], eta)
        why = f"pre-copy would take about {eta:.0f} s"
        return made(True, d, d, False, _postcopy_strategy(why), post_eta, True)
    needed = math.ceil(1000 * dirty_bps / usable)
    if policy.postcopy:
        why = f"pre-copy alone would need {needed} ms of downtime"
        return made(
            True, policy.downtime_ms, needed, False, _postcopy_strategy(why), post_eta, True
        )
    fits = [d for d in policy.downtime_ladder() if d >= needed]
    if fits:
        d = fits[0]
        strategy = [f"pre-copy with the downtime raised to {d} ms"]
        return made(True, d, needed, False, strategy, first_pass + 2 * d / 1000)
    strategy = [f"downtime raised to {policy.max_downtime_ms} ms"]
    if policy.auto_converge:
        strategy.append("auto-converge (the guest's vCPUs are throttled)")
    strategy.append(
        "post-copy not allowed (--postcopy, or 'cluster set --postcopy when-needed'); "
        "quick migration is the alternative"
    )
    return made(
        False, policy.max_downtime_ms, needed, policy.auto_converge, strategy, first_pass * 3
    )
