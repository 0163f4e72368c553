"""The convergence prediction, on the lab's measured cases (lab notes §2)."""

from __future__ import annotations

from whimbrel.domain.convergence import predict
from whimbrel.domain.migration import MIB, Policy

MEM = 256 * MIB


def test_light_guest_converges_at_the_default_downtime() -> None:
    p = predict(MEM, 8 * MIB, 119 * MIB, "measured", Policy())
    assert p.converges and p.downtime_ms == 300 and p.strategy == ["pre-copy"]
    assert 2.0 < p.eta_s < 4.0


def test_dirtying_faster_than_the_link_raises_the_downtime_from_the_start() -> None:
    # 64 MiB flat out on a 400 Mbit/s link: about 1.7 s of downtime needed.
    p = predict(MEM, 64 * MIB, 48 * MIB, "measured", Policy())
    assert p.converges and p.downtime_ms == 2000 and p.needed_ms > 1200


def test_beyond_the_maximum_it_says_what_it_will_do() -> None:
    p = predict(MEM, 300 * MIB, 48 * MIB, "measured", Policy(postcopy=True))
    assert not p.converges and p.auto_converge
    assert p.strategy[-1] == "then post-copy"
    p = predict(MEM, 300 * MIB, 48 * MIB, "measured", Policy())
    assert "quick migration" in p.verdict


def test_ladder_doubles_up_to_the_maximum() -> None:
    assert Policy(downtime_ms=300, max_downtime_ms=2000).downtime_ladder() == [300, 600, 1200, 2000]
