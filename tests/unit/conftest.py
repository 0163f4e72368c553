"""Fixtures shared by the unit tests (those of every suite are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.hyperv_double.estate import HyperVEstate
from tests.unit.hyperv_estate import build, register
from whimbrel.config import Settings
from whimbrel.manager import Manager


@pytest.fixture
def estate() -> HyperVEstate:
    return build(ps51=True)


@pytest.fixture
def hv(settings: Settings, estate: HyperVEstate) -> Iterator[Api]:
    m = Manager(settings, opener=estate.open)
    m.start()
    api = Api(m)
    register(api, estate)
    yield api
    m.stop()


METADATA = """<?xml version="1.0" ?>
<resource-agent name="fence_test" shortdesc="Fence agent for the tests">
<parameters>
  <parameter name="ip"><content type="string"/></parameter>
  <parameter name="username"><content type="string"/></parameter>
  <parameter name="password"><content type="string"/></parameter>
  <parameter name="ipmitool_path"><content type="string"/></parameter>
  <parameter name="ssl_insecure"><content type="boolean"/></parameter>
</parameters>
</resource-agent>
"""


@pytest.fixture
def agents(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A fence-agents directory with fence_test, which documents the options above and
    reports OFF; its calls are written to calls.log."""
    d = tmp_path / "sbin"
    d.mkdir()
    (tmp_path / "metadata.xml").write_text(METADATA)
    agent = d / "fence_test"
    agent.write_text(
        "#!/bin/sh\n"
        f'if [ "$1" = "-o" ]; then cat {tmp_path}/metadata.xml; exit 0; fi\n'
        f"cat >> {tmp_path}/calls.log\n"
        "echo 'Status: OFF'\n"
    )
    agent.chmod(0o755)
    monkeypatch.setenv("WHIMBREL_FENCE_AGENT_DIR", str(d))
    return d
