"""Fixtures shared by the unit tests (those of every suite are in tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import Api
from tests.hyperv_double.estate import HyperVEstate
from tests.unit.hyperv_estate import build, register
from tests.unit.test_api_vms import _vm
from whimbrel.config import Settings
from whimbrel.drivers.fake import FakeFleet
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


PASSWORD = "correct horse battery"


def as_user(api: Api, name: str, role: str = "", cluster: str = "") -> Api:
    """A client of ``api``'s manager acting as a new user ``name`` with that grant."""
    assert api.call("POST", "/users", json={"name": name, "password": PASSWORD}).status_code == 201
    if role:
        grant = {"role": role, "cluster": cluster}
        assert api.call("POST", f"/users/{name}/grants", json=grant).status_code == 201
    token = api.call("POST", "/tokens", json={"user": name, "label": "test"}).json()["token"]
    other = Api(api.manager)
    other.http.headers["Authorization"] = f"Bearer {token}"
    return other


@pytest.fixture
def two(hosts: Api, fleet: FakeFleet) -> Api:
    """c1 (f1..f3) with VM v1 on f1, and c2 (g1) with VM w1."""
    hosts.ok("POST", "/clusters", {"name": "c2", "shared_paths": ["/srv/csvb"]})
    fleet.add_host("g1", memory_mib=4096, pools={"local": "/srv/g1", "csvb": "/srv/csvb"})
    hosts.ok("POST", "/hosts", {"name": "g1", "uri": "fake://g1", "cluster": "c2"})
    hosts.ok("POST", "/vms", _vm("v1", "f1"))
    hosts.ok("POST", "/vms", _vm("w1", "g1", disks=[]))
    return hosts
