"""Host URIs: only the transports Whimbrel supports, with nothing that changes how the
manager (root) connects.  Each refusal is coded and stores nothing."""

from __future__ import annotations

import pytest

from tests.conftest import Api
from whimbrel.drivers import check_uri

REFUSED = {
    # libvirt runs the program named by command= as the manager's user
    "qemu+ext:///system?command=/tmp/x": "E_INVALID_HOST_URI",
    "qemu+tls://10.0.0.9/system?no_verify=1": "E_HOST_URI_OPTION_REFUSED",
    "qemu+tls://10.0.0.9/system?pkipath=/tmp/mine": "E_HOST_URI_OPTION_REFUSED",
    "qemu+tls://root@10.0.0.9/system": "E_HOST_URI_OPTION_REFUSED",
    "qemu+ssh://10.0.0.9/system": "E_INVALID_HOST_URI",
    "qemu+unix:///system?socket=/run/x": "E_INVALID_HOST_URI",
    "qemu:///system": "E_INVALID_HOST_URI",
    "qemu+tls://10.0.0.9/session": "E_INVALID_HOST_URI",
    "qemu+tls://10.0.0.9;id/system": "E_INVALID_HOST_URI",
    "test:///default": "E_INVALID_HOST_URI",
    "hyperv://hv01?auth=kerberos&cert_validation=ignore": "E_HOST_URI_OPTION_REFUSED",
    "hyperv://hv01?auth=kerberos&configuration=a;b": "E_INVALID_HOST_URI",
}


@pytest.mark.parametrize("uri", list(REFUSED))
def test_a_uri_that_would_change_how_the_manager_connects_is_refused(api: Api, uri: str) -> None:
    assert api.error("POST", "/hosts", {"name": "h9", "uri": uri}) == (400, REFUSED[uri])
    assert api.call("GET", "/hosts/h9").status_code == 404


@pytest.mark.parametrize(
    "uri",
    ["qemu+tls://10.0.0.9/system", "qemu+tls://kvm1.example.net:16514/system",
     "qemu+tls://[fd00::9]/system"],
)  # fmt: skip
def test_plain_tls_uris_are_accepted(uri: str) -> None:
    assert check_uri(uri) == "libvirt"
