"""What comes back over the wire, made regular.

The scripts already send names for enums, ISO dates and real arrays, but a
host may run a script of an older Whimbrel, or the default Windows PowerShell
5.1 endpoint may still get its way (``ConvertTo-Json`` there writes enums as
numbers, dates as ``/Date(ms)/``, a one-item array as a bare object and an
empty one as nothing).  Every reader goes through these helpers, so both
shapes parse to the same values.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from whimbrel.errors import HypervisorError

# Enum values from the Hyper-V and FailoverClusters modules (research/hyperv.md).
# VMState numbers past ForceShutdown differ between Windows versions: only the
# stable ones are mapped, an unknown number is an error rather than a guess.
VM_STATE = {
    1: "Other", 2: "Running", 3: "Off", 4: "Stopping", 6: "Saved", 9: "Paused",
    10: "Starting", 11: "Reset", 32773: "Saving", 32776: "Pausing", 32777: "Resuming",
    32779: "FastSaved", 32780: "FastSaving", 32781: "ForceShutdown",
}  # fmt: skip
AUTH_TYPE = {0: "CredSSP", 1: "Kerberos"}
PERFORMANCE = {0: "TCPIP", 1: "Compression", 2: "SMB"}
SWITCH_TYPE = {0: "Private", 1: "Internal", 2: "External"}
CONTROLLER_TYPE = {0: "IDE", 1: "SCSI", 2: "PMEM"}
NODE_STATE = {-1: "Unknown", 0: "Up", 1: "Down", 2: "Paused", 3: "Joining"}
DRAIN_STATUS = {0: "NotInitiated", 1: "InProgress", 2: "Completed", 3: "Failed"}
GROUP_STATE = {
    -1: "Unknown",
    0: "Online",
    1: "Offline",
    2: "Failed",
    3: "PartialOnline",
    4: "Pending",
}
RESOURCE_STATE = {
    -1: "Unknown", 0: "Inherited", 1: "Initializing", 2: "Online", 3: "Offline", 4: "Failed",
    128: "Pending", 129: "OnlinePending", 130: "OfflinePending",
}  # fmt: skip
COMPARE_OPERATION = {
    0: "MoveVirtualMachine",
    1: "ImportVirtualMachine",
    2: "MoveVirtualMachineAndStorage",
}

_MS_DATE = re.compile(r"^/Date\((-?\d+)(?:[+-]\d{4})?\)/$")


def bad_shape(what: str, value: Any) -> HypervisorError:
    return HypervisorError(
        "E_HYPERV_PROTOCOL",
        f"the Hyper-V host answered {what} in a shape Whimbrel does not know: {value!r}"[:300],
        "check that the host runs Windows Server 2016 or later with the Hyper-V module",
    )


def as_list(value: Any) -> list[Any]:
    """A JSON array from PowerShell: one item may come bare, none may come as null."""
    if value is None:
        return []
    return list(value) if isinstance(value, list) else [value]


def enum(value: Any, table: dict[int, str], what: str) -> str:
    """An enum as its name, whether it came as the name or as the number."""
    if isinstance(value, str) and not value.lstrip("-").isdigit():
        return value
    if isinstance(value, (int, str)) and not isinstance(value, bool) and int(value) in table:
        return table[int(value)]
    raise bad_shape(what, value)


def date(value: Any) -> datetime | None:
    """``/Date(ms)/`` (5.1), ISO 8601 (``ToString('o')``, pwsh 7) or null."""
    if value in (None, ""):
        return None
    if isinstance(value, str):
        m = _MS_DATE.match(value.replace("\\/", "/"))
        if m:
            return datetime.fromtimestamp(int(m.group(1)) / 1000, UTC)
        try:
            d = datetime.fromisoformat(value)
        except ValueError:
            raise bad_shape("a date", value) from None
        return d if d.tzinfo else d.replace(tzinfo=UTC)
    raise bad_shape("a date", value)


def seconds(value: Any) -> float:
    """A duration: seconds as a number, or a serialised TimeSpan object."""
    if value is None:
        return 0.0
    if isinstance(value, dict):
        if "TotalSeconds" in value:
            return float(value["TotalSeconds"])
        if "Ticks" in value:
            return int(value["Ticks"]) / 10_000_000
        raise bad_shape("a duration", value)
    return float(value)


def version(value: Any) -> str:
    """A configuration version: "9.0", or a serialised System.Version object."""
    if isinstance(value, dict):
        return f"{value.get('Major', 0)}.{value.get('Minor', 0)}"
    return str(value)


def text(value: Any) -> str:
    """A string that may have come wrapped (a Guid as ``{"Guid": ...}``) or null."""
    if value is None:
        return ""
    if isinstance(value, dict) and "Guid" in value:
        return str(value["Guid"])
    return str(value)


def win_path(path: str) -> str:
    """Whimbrel's paths use '/'; Windows is sent backslashes."""
    return path.replace("/", "\\")


def our_path(path: str) -> str:
    return path.replace("\\", "/")
