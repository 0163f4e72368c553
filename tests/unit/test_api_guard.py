"""What the API refuses before it reads a body or changes anything: a changing request
without the token, a body over the limit (declared or chunked), a name with a trailing
newline, a kernel from outside the hosts' boot directory."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import Api
from tests.unit.test_api_vms import _vm
from whimbrel.api.guard import MAX_BODY


def test_a_change_without_the_token_is_refused_before_its_body_is_read(api: Api) -> None:
    r = api.http.request(
        "POST", "/api/v1/clusters", content=b"x" * (4 * MAX_BODY), headers={"Authorization": ""}
    )
    assert r.status_code == 401 and r.json()["error"]["code"] == "E_AUTH_TOKEN"
    r = api.http.request(
        "POST", "/api/v1/clusters", json={"name": "c9"}, headers={"Authorization": "Bearer x"}
    )
    assert r.status_code == 401
    assert api.call("GET", "/clusters/c9").status_code == 404


def test_a_body_over_the_limit_is_refused(api: Api) -> None:
    big = {"name": "c9", "shared_paths": ["/" + "a" * MAX_BODY]}
    r = api.call("POST", "/clusters", json=big)
    assert r.status_code == 413 and r.json()["error"]["code"] == "E_REQUEST_TOO_LARGE"

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it arrives
        yield b'{"name": "c9", "shared_paths": ["/'
        for _ in range(MAX_BODY // 65536 + 1):
            yield b"a" * 65536
        yield b'"]}'

    r = api.call("POST", "/clusters", content=chunks())
    assert r.status_code == 413 and r.json()["error"]["code"] == "E_REQUEST_TOO_LARGE"
    assert api.call("GET", "/clusters/c9").status_code == 404


def test_a_name_with_a_trailing_newline_is_refused(hosts: Api) -> None:
    assert hosts.error("POST", "/vms", _vm("v1\n")) == (400, "E_INVALID_VM_NAME")
    assert hosts.call("GET", "/vms").json() == []


@pytest.mark.parametrize(
    "kernel", ["/etc/shadow", "/srv/whimbrel/guest/../../../etc/shadow", "vmlinuz",
               "/srv/whimbrel/guestx/vmlinuz", "/srv/whimbrel/guest//vmlinuz"],
)  # fmt: skip
def test_a_kernel_outside_the_boot_directory_is_refused(
    hosts: Api,
    kernel: str,
) -> None:
    body = _vm(kernel=kernel)
    assert hosts.error("POST", "/vms", body) == (400, "E_BOOT_FILE_REFUSED")
    assert hosts.error("POST", "/vms", _vm(initrd=kernel)) == (400, "E_BOOT_FILE_REFUSED")
    assert hosts.call("GET", "/vms").json() == []
    hosts.ok("POST", "/vms", _vm(kernel="/srv/whimbrel/guest/vmlinuz"))
