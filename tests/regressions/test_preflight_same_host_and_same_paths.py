"""Preflight counted disks that do not move, and missed disks that do.

A VM checked against its own host got E_DISK_NOT_SHARED besides E_SAME_HOST;
a storage move into the pool the disks already use got E_NO_SPACE for them;
and a move to another host's pool of the same path (paths are equal on every
host) counted no disk at all, so E_NO_SPACE never fired.
"""

from __future__ import annotations

from tests.conftest import Api
from tests.unit.test_api_migration import codes
from tests.unit.test_api_vms import _vm


def test_preflight_same_host_and_same_paths(hosts: Api) -> None:
    big = {"size_mib": 600 << 10, "pool": "local"}  # more than a fake pool's 512 GiB free
    hosts.ok("POST", "/vms", _vm(disks=[big]))
    assert codes(hosts, "v1", to="f1") == {"E_SAME_HOST"}
    assert codes(hosts, "v1", to="f1", include_storage=True, storage_path="local") == {
        "E_STORAGE_SAME_PATH"
    }
    assert codes(hosts, "v1", to="f2", include_storage=True, storage_path="local") == {"E_NO_SPACE"}
