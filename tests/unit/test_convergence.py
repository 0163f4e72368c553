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
    p = predict(MEM, 300 * MIB, 48 * MIB, "measured", Policy())
    assert not p.converges and p.auto_converge and not p.postcopy
    assert "quick migration" in p.verdict and "--postcopy" in p.verdict


def test_where_post_copy_is_allowed_it_replaces_a_longer_downtime() -> None:
    # The shaped-link case: pre-copy would need about 1.7 s of downtime.
    p = predict(MEM, 64 * MIB, 48 * MIB, "measured", Policy(postcopy=True))
    assert p.converges and p.postcopy and not p.auto_converge
    assert p.downtime_ms == 300 and p.needed_ms > 1200
    assert "then post-copy" in p.verdict and "pauses the VM" in p.verdict
    # One pass of 256 MiB at 80 % of 48 MiB/s, then what was rewritten meanwhile.
    assert 6.6 < p.eta_s < 14


def test_post_copy_also_replaces_a_pre_copy_of_many_passes() -> None:
    slow = predict(MEM, 36 * MIB, 48 * MIB, "measured", Policy(postcopy=True))
    assert slow.postcopy and "would take about" in slow.strategy[0]
    light = predict(MEM, 8 * MIB, 119 * MIB, "measured", Policy(postcopy=True))
    assert not light.postcopy and light.strategy == ["pre-copy"]
    unknown = predict(MEM, -1, 119 * MIB, "assumed", Policy(postcopy=True))
    assert not unknown.postcopy  # the live loop decides after the first pass


def test_ladder_doubles_up_to_the_maximum() -> None:
    assert Policy(downtime_ms=300, max_downtime_ms=2000).downtime_ladder() == [300, 600, 1200, 2000]
