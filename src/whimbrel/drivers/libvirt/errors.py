"""libvirt's errors translated into Whimbrel's, keeping libvirt's own text as detail.

The TLS cases get words an administrator can act on (which side distrusts
which, and what to issue or trust), the way Hyper-V's 0x8009030E deserves an
explanation rather than the bare code.
"""

from __future__ import annotations

import libvirt

from whimbrel.errors import (
    HostUnreachable,
    HostUntrusted,
    HypervisorError,
    InsufficientResources,
    LockConflict,
    NotFound,
    WhimbrelError,
)

_UNTRUSTED_SERVER = (
    "Failed to verify peer's certificate",
    "hasn't got a known issuer",
    "certificate is not trusted",
    "signer not found",
    "Unable to verify server certificate",
    "Certificate failed validation",
    "certificate does not match",
    "is not valid for",
)
_MISSING_CLIENT_CREDS = ("Cannot read CA certificate", "Cannot read client", "Cannot access CA")
# The host checks the client's certificate after the handshake and hangs up
# when it does not trust it: the client then fails to read the confirmation.
_REJECTED_CLIENT = (
    "Unable to read TLS confirmation",
    "Client's Distinguished Name is not on the list",
    "peer did not send any certificate",
)
_UNREACHABLE = (
    "Connection refused",
    "No route to host",
    "timed out",
    "Network is unreachable",
    "unable to connect to server",
    "Cannot recv data",
    "no connection driver available",
    "Broken pipe",
    "End of file while reading data",
    "client socket is closed",
    "Unable to resolve address",
)


def _has(msg: str, needles: tuple[str, ...]) -> bool:
    low = msg.lower()
    return any(n.lower() in low for n in needles)


def unreachable(msg: str) -> bool:
    """Whether libvirt's text says the link to a host broke (or never opened)."""
    return _has(msg, _UNREACHABLE)


def connect_error(uri: str, exc: libvirt.libvirtError) -> WhimbrelError:
    msg = str(exc)
    if _has(msg, _MISSING_CLIENT_CREDS):
        return HostUntrusted(
            "E_MANAGER_CERT_MISSING",
            f"the manager has no usable TLS client certificate to reach {uri}",
            "run 'whimbrel pki init' (or 'whimbrel lab up' in the lab), or point the URI's "
            "pkipath= at a directory holding cacert.pem, clientcert.pem and clientkey.pem",
            msg,
        )
    if "Our own certificate" in msg:
        return HostUntrusted(
            "E_MANAGER_CERT_INVALID",
            "the manager's own client certificate does not validate against its CA file",
            "issue the manager's client certificate from the CA in cacert.pem "
            "(whimbrel pki init writes a matching pair)",
            msg,
        )
    if _has(msg, _UNTRUSTED_SERVER):
        return HostUntrusted(
            "E_HOST_CERT_UNTRUSTED",
            f"the certificate presented by {uri} is not signed by a CA the manager trusts, "
            "or does not name that address",
            "issue the host's server certificate from the manager's CA ('whimbrel pki issue') "
            "with the host's name and address, or add the host's CA to the manager's cacert.pem",
            msg,
        )
    if _has(msg, _REJECTED_CLIENT):
        return HostUntrusted(
            "E_HOST_REJECTS_MANAGER",
            f"{uri} refused the manager's client certificate",
            "add the manager's certificate DN to tls_allowed_dn_list in the host's libvirtd.conf, "
            "or issue the manager's certificate from a CA the host trusts",
            msg,
        )
    if _has(msg, _UNREACHABLE) or exc.get_error_code() == libvirt.VIR_ERR_NO_CONNECT:
        return HostUnreachable(
            "E_HOST_UNREACHABLE",
            f"host {uri} does not answer",
            "check that libvirtd runs there and listens for TLS (listen_tls=1, port 16514), "
            "and that the address is right and reachable from the manager",
            msg,
        )
    return HypervisorError(
        "E_HOST_CONNECT", f"cannot open {uri}", "read the detail from libvirt", msg
    )


def call_error(host: str, what: str, exc: libvirt.libvirtError) -> WhimbrelError:
    msg = str(exc)
    code = exc.get_error_code()
    if code == libvirt.VIR_ERR_NO_DOMAIN:
        return NotFound(
            "E_DOMAIN_NOT_FOUND",
            f"host {host} has no domain for {what}",
            "refresh the host; the VM may have been removed outside Whimbrel",
            msg,
        )
    if "is locked" in msg or ("Failed to get" in msg and "lock" in msg):
        return LockConflict(
            "E_DISK_LOCKED",
            f"{what}: a disk of this VM is held by a running VM (its lease or image lock is taken)",
            "find and stop the VM that uses the disk; a VM must never run on two hosts",
            msg,
        )
    if "Cannot allocate memory" in msg or "cannot set up guest memory" in msg:
        return InsufficientResources(
            "E_NO_MEMORY",
            f"{what}: host {host} could not allocate the VM's memory",
            "free memory on the host or give the VM less",
            msg,
        )
    if _has(msg, _UNREACHABLE):
        return HostUnreachable(
            "E_HOST_UNREACHABLE",
            f"host {host} stopped answering during {what}",
            "check the host and its libvirtd; then refresh it",
            msg,
        )
    return HypervisorError(
        "E_HYPERVISOR", f"{what} failed on host {host}", "read libvirt's message in the detail", msg
    )
