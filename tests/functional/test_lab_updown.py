"""'lab up' is idempotent and 'lab down' leaves nothing behind."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from tests.conftest import make_settings
from whimbrel.lab import netns
from whimbrel.lab.lab import Lab
from whimbrel.lab.topology import LabSpec

pytestmark = pytest.mark.lab


def _links(prefix: str) -> list[str]:
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True, text=True).stdout
    return [ln.split(": ")[1].split("@")[0] for ln in out.splitlines() if f": {prefix}" in ln]


def _running(pid: int) -> bool:
    """Alive and not a zombie (a zombie is dead; reaping it is its parent's business)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


def test_up_twice_then_down_leaves_nothing(lab: Lab, tmp_path: Path) -> None:
    # 'lab' is requested only so that the machine is known to be able to run labs.
    spec = LabSpec(
        name="ud", root=Path("/var/tmp/whimbrel-updown-lab"), octet=80, clusters={"solo": ("h1",)}
    )
    small = Lab(spec, make_settings(tmp_path))
    small.down(say=lambda _m: None)
    first = small.up(say=lambda _m: None)
    assert first[0].answering and first[0].libvirtd_pid
    again = small.up(say=lambda _m: None)
    assert again[0].libvirtd_pid == first[0].libvirtd_pid, "a working host is left alone"
    pids = netns.netns_pids(spec.hosts[0].netns)
    assert len(pids) >= 2  # libvirtd and virtlockd

    small.down(say=lambda _m: None)
    assert spec.hosts[0].netns not in netns.netns_list()
    assert _links("wbud") == [], "no bridge or veth is left"
    assert not spec.root.exists()
    assert [p for p in pids if _running(p)] == [], "no process is left running"
    small.down(say=lambda _m: None)  # down twice is fine too
