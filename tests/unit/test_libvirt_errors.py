"""libvirt's failures reach the administrator as coded errors, never as E_INTERNAL."""

from __future__ import annotations

import libvirt
import pytest

from whimbrel.drivers.libvirt.errors import call_error
from whimbrel.drivers.libvirt.migration import _migration_error


@pytest.mark.parametrize(
    ("text", "code"),
    [
        ("internal error: client socket is closed", "E_MIGRATION_INTERRUPTED"),
        ("Cannot recv data: Connection reset by peer", "E_MIGRATION_INTERRUPTED"),
        ("operation aborted: migration out job: canceled by client", "E_MIGRATION_ABORTED"),
        ("operation failed: migration out job: unexpectedly failed", "E_MIGRATION_FAILED"),
    ],
)
def test_a_migration_failure_says_what_happened(text: str, code: str) -> None:
    err = _migration_error("h1", "v1", libvirt.libvirtError(text))
    assert err.to_dict()["code"] == code
    assert "h1" in err.to_dict()["cause"]


def test_a_broken_link_during_a_call_is_the_host_not_answering() -> None:
    err = call_error("h2", "copy disk vda", libvirt.libvirtError("client socket is closed"))
    assert err.code == "E_HOST_UNREACHABLE"
