"""Windows PowerShell 5.1's raw shapes of the double's answers (see :mod:`.double`)."""

from __future__ import annotations

from typing import Any

from whimbrel.drivers.hyperv import wire as w


def ps51(name: str, data: Any) -> Any:
    """The same answer as Windows PowerShell 5.1 writes it when objects are piped raw:
    enums as numbers, a one-item array bare, an empty one as nothing."""

    def num(table: dict[int, str], v: Any) -> Any:
        back = {n: k for k, n in table.items()}
        return back.get(v, v)

    def bare(v: Any) -> Any:
        if isinstance(v, list):
            return None if not v else v[0] if len(v) == 1 else v
        return v

    if name == "host_inventory":
        d = dict(data)
        d["VirtualMachineMigrationAuthenticationType"] = num(
            w.AUTH_TYPE, d["VirtualMachineMigrationAuthenticationType"]
        )
        d["VirtualMachineMigrationPerformanceOption"] = num(
            w.PERFORMANCE, d["VirtualMachineMigrationPerformanceOption"]
        )
        d["Switches"] = bare(
            [{**s, "SwitchType": num(w.SWITCH_TYPE, s["SwitchType"])} for s in d["Switches"]]
        )
        for k in ("MigrationNetworks", "Addresses", "LocalAccounts"):
            d[k] = bare(d[k])
        return d
    if name == "vm_list":
        return bare(
            [
                {
                    **v,
                    "State": num(w.VM_STATE, v["State"]),
                    "Disks": bare(
                        [
                            {**x, "ControllerType": num(w.CONTROLLER_TYPE, x["ControllerType"])}
                            for x in v["Disks"]
                        ]
                    ),
                    "NetworkAdapters": bare(v["NetworkAdapters"]),
                    "UptimeSeconds": None,
                    "Uptime": {
                        "Ticks": v["UptimeSeconds"] * 10_000_000,
                        "TotalSeconds": v["UptimeSeconds"],
                    },
                }
                for v in data
            ]
        )
    if name == "cluster_inventory":
        return {
            **data,
            "Nodes": bare(
                [
                    {
                        **n,
                        "State": num(w.NODE_STATE, n["State"]),
                        "DrainStatus": num(w.DRAIN_STATUS, n["DrainStatus"]),
                    }
                    for n in data["Nodes"]
                ]
            ),
            "VmGroups": bare(
                [
                    {
                        **g,
                        "State": num(w.GROUP_STATE, g["State"]),
                        "OwnerNode": {"Name": g["OwnerNode"], "State": 0},
                    }
                    for g in data["VmGroups"]
                ]
            ),
        }
    return data
