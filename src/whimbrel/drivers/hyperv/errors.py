"""Hyper-V's failures (research/hyperv.md §2) as Whimbrel errors with a cause and a fix.

VMMS puts the whole chain in one message, with the HRESULT in parentheses
("... No credentials are available in the security package (0x8009030E)."):
the HRESULT decides, the message is kept as the detail.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from whimbrel.errors import (
    Conflict,
    HostUnreachable,
    HostUntrusted,
    HypervisorError,
    InsufficientResources,
    LockConflict,
    NotFound,
    WhimbrelError,
    WrongState,
)

_HRESULT = re.compile(r"\((0x[0-9A-Fa-f]{8})\)")
DELEGATION_FIX = (
    "use Kerberos with constrained delegation on both hosts ('whimbrel host migration set "
    "HOST --auth peer' and 'whimbrel hyperv delegation grant SRC DST'), or start the move "
    "on the source host itself; a delegation just granted may need time to replicate and "
    "new tickets ('klist purge -li 0x3e7' on the source, or wait about 15 minutes)"
)

Make = Callable[[str], WhimbrelError]

_BY_HRESULT: dict[int, Make] = {
    0x8009030E: lambda m: HostUntrusted(
        "E_HYPERV_NO_CREDENTIALS",
        "the source host could not authenticate the migration connection: no credentials "
        "are available in the security package (0x8009030E); with CredSSP the move must be "
        "started by someone signed in on the source, with Kerberos the source needs "
        "constrained delegation to the destination",
        DELEGATION_FIX,
        m,
    ),
    0x8009030D: lambda m: HostUntrusted(
        "E_HYPERV_NO_CREDENTIALS",
        "the credentials for the migration connection were not recognized (0x8009030D)",
        DELEGATION_FIX,
        m,
    ),
    0x80090303: lambda m: HostUntrusted(
        "E_HYPERV_SPN_MISSING",
        "Kerberos cannot reach the destination's migration service (0x80090303): its "
        "'Microsoft Virtual System Migration Service' SPN or delegation entry is missing "
        "for the name used",
        'register the SPN (\'setspn -s "Microsoft Virtual System Migration Service/FQDN" '
        "HOST') and delegate both the short and the full name ('whimbrel hyperv "
        "delegation grant SRC DST')",
        m,
    ),
    0x80090322: lambda m: HostUntrusted(
        "E_HYPERV_WRONG_PRINCIPAL",
        "the migration network chosen reaches a host other than the destination (0x80090322)",
        "check DNS and the live migration network order of the cluster",
        m,
    ),
    0x8007274C: lambda m: HostUnreachable(
        "E_HYPERV_MIGRATION_CONNECT",
        "the source got no answer from the destination's migration listener (TCP 6600)",
        "check that migration is enabled on the destination, that one of its migration "
        "networks joins the source, and that the firewall lets TCP 6600 through",
        m,
    ),
    0x8007274D: lambda m: HostUnreachable(
        "E_HYPERV_MIGRATION_CONNECT",
        "the destination refused the migration connection (no listener on TCP 6600)",
        "enable migration on the destination and give it a network the source is on",
        m,
    ),
    0x8007000E: lambda m: InsufficientResources(
        "E_NO_MEMORY",
        "the destination ran out of memory for the VM (0x8007000E)",
        "free memory on the destination or choose another host",
        m,
    ),
    0x800705AA: lambda m: InsufficientResources(
        "E_NO_MEMORY",
        "the destination lacks the system resources to create the VM's partition (0x800705AA)",
        "free memory on the destination (or allow NUMA spanning) or choose another host",
        m,
    ),
    0x80070020: lambda m: LockConflict(
        "E_DISK_LOCKED",
        "a disk of the VM is in use by another process (0x80070020)",
        "find where the VM runs ('whimbrel vm list') before starting it here",
        m,
    ),
    0x80071398: lambda m: WrongState(
        "E_CLUSTER_NOT_POSSIBLE_OWNER",
        "the target node is not a possible owner of the VM's cluster resources (0x80071398)",
        "add every node to the possible owners of 'Virtual Machine NAME' and its "
        "configuration resource",
        m,
    ),
    0x800713AB: lambda m: HostUnreachable(
        "E_CLUSTER_NETWORK_UNAVAILABLE",
        "no cluster network is available for the migration (0x800713AB, Win32 error 5035)",
        "allow live migration on at least one cluster network (Get-ClusterNetwork)",
        m,
    ),
    0x80070005: lambda m: HostUntrusted(
        "E_HYPERV_ACCESS_DENIED",
        "the host denied access (0x80070005); Move-ClusterVirtualMachineRole and "
        "Add-ClusterVirtualMachineRole cannot run in a remote session without CredSSP",
        "add configuration=NAME to the host URI, NAME being a session configuration "
        "registered on every node (Register-PSSessionConfiguration -Name NAME "
        "-RunAsVirtualAccount), or connect with auth=credssp; and check that the account "
        "administers the host and the cluster",
        m,
    ),
}


def hresults(message: str) -> list[int]:
    return [int(h, 16) for h in _HRESULT.findall(message)]


def _hresult(code: int) -> int:
    """A Win32 error code (5035, 0x000013AB) in its HRESULT form (0x800713AB): hosts and
    logs write either."""
    return 0x80070000 | code if 0 < code <= 0xFFFF else code


def classify(
    message: str, hresult: int | None = None, fqid: str = "", category: str = ""
) -> WhimbrelError:
    """The Whimbrel error for a failure the host reported in ``message``."""
    codes = hresults(message) + ([hresult & 0xFFFFFFFF] if hresult else [])
    for code in map(_hresult, codes):
        if code in _BY_HRESULT:
            return _BY_HRESULT[code](message)
    low = message.lower()
    if "migration limit" in low:
        return WrongState(
            "E_MIGRATION_LIMIT",
            "the host's limit of simultaneous migrations was reached",
            "wait for the moves under way, or raise the limit ('whimbrel host migration "
            "set HOST --max-live N'); in a cluster MaximumParallelMigrations decides",
            message,
        )
    if "processor-specific features" in low or "not compatible with the hardware" in low:
        return WrongState(
            "E_CPU_INCOMPATIBLE",
            "the destination's processor lacks features the VM uses",
            "shut the VM down and turn on processor compatibility "
            "(Set-VMProcessor -CompatibilityForMigrationEnabled $true), or choose a host "
            "with the same processor generation",
            message,
        )
    first = message.splitlines()[0][:200] if message else "no message"
    # Get-VM's "unable to find" is an invalid argument (InvalidParameter,…GetVMCommand),
    # not ObjectNotFound: the category and the text say it too.
    missing = any(x in low for x in ("unable to find", "was not found", "could not find"))
    if "ObjectNotFound" in (fqid + category + message) or (
        category == "InvalidArgument" and missing
    ):
        return NotFound("E_HYPERV_NOT_FOUND", first, "check the name", message)
    if "ResourceExists" in fqid or "ResourceExists" in message:
        return Conflict("E_HYPERV_EXISTS", first, "choose another name", message)
    return HypervisorError(
        "E_HYPERV_ERROR",
        "the Hyper-V host refused: " + first,
        "see the detail for Hyper-V's own text; the event logs Hyper-V-VMMS-Admin and "
        "Hyper-V-High-Availability-Admin on the host say more",
        message,
    )


def remote(error: dict[str, Any]) -> WhimbrelError:
    """The envelope's ``error`` object (see scripts.ENVELOPE) as a Whimbrel error."""
    message = "\n".join(str(x) for x in (error.get("message"), error.get("inner")) if x)
    hres = error.get("hresult")
    return classify(
        message,
        int(hres) if isinstance(hres, int) else None,
        str(error.get("fqid") or ""),
        str(error.get("category") or ""),
    )
