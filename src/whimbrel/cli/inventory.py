"""whimbrel host ... and whimbrel cluster ..."""

from __future__ import annotations

from typing import Any

import typer

from whimbrel.cli.context import client, err, out
from whimbrel.cli.render import emit_json, fields, mib, table

host_app = typer.Typer(
    help="Hypervisor hosts: add, list, show, refresh, remove.", no_args_is_help=True
)
cluster_app = typer.Typer(
    help="Clusters of hosts sharing storage and networks.", no_args_is_help=True
)

JSON = typer.Option(False, "--json", help="Print JSON instead of a table.")
WAIT = typer.Option(True, "--wait/--no-wait", help="Follow the job until it ends.")


def _run(job: dict[str, Any], wait: bool, json: bool = False) -> None:
    """Follow a job just submitted; with ``json`` print the job (as submitted, or as it
    ended) as JSON on stdout, the progress still on stderr."""
    if not wait:
        if json:
            return emit_json(out, job)
        out.print(f"job {job['id']} submitted")
        return
    done = client().follow(job, err)
    if json:
        return emit_json(out, done)
    out.print(f"job {done['id']} {done['kind']} {done['subject']}: [green]{done['state']}[/]")


@host_app.command("add")
def host_add(
    name: str,
    uri: str = typer.Option(..., help="qemu+tls://ADDRESS/system"),
    cluster: str = typer.Option("", help="Cluster to join."),
    wait: bool = WAIT,
) -> None:
    """Connect to a host over TLS, read its inventory and add it."""
    _run(client().post("/hosts", {"name": name, "uri": uri, "cluster": cluster}), wait)


@host_app.command("list")
def host_list(json: bool = JSON) -> None:
    hosts = client().get("/hosts")
    if json:
        return emit_json(out, hosts)
    table(
        out,
        "Hosts",
        ["NAME", "CLUSTER", "STATE", "SINCE", "URI", "CPUS", "FREE/TOTAL MEMORY", "VIRT", "VMS"],
        [
            [
                h["name"],
                h["cluster"] or "-",
                h["state"] + (" (maintenance)" if h["maintenance"] else ""),
                h["state_since"][11:19] if h["state_since"] else "-",
                h["uri"],
                f"{h['cpus']} {h['cpu_model']}",
                f"{mib(h['free_memory_mib'])} / {mib(h['memory_mib'])}",
                h["virt_type"],
                h["vms"],
            ]
            for h in hosts
        ],
    )
    for h in hosts:  # what the state rests on, for every host that is not plainly fine
        if h["state"] != "connected" and h["state_reason"]:
            out.print(f"{h['name']}: {h['state_reason']}", highlight=False, soft_wrap=True)


@host_app.command("show")
def host_show(name: str, json: bool = JSON) -> None:
    h = client().get(f"/hosts/{name}")
    if json:
        return emit_json(out, h)
    h["machine_types"] = (
        f"{len(h['machine_types'])} (newest: {max(h['machine_types'], default='-')})"
    )
    nets, pools, events = h.pop("networks"), h.pop("pools"), h.pop("events")
    fields(out, f"Host {name}", h)
    if events:
        table(out, "Events", ["AT", "EVENT"], [[e["at"], e["event"]] for e in events])
    table(
        out,
        "Networks",
        ["NAME", "BRIDGE", "ACTIVE"],
        [[n["name"], n["bridge"], n["active"]] for n in nets],
    )
    table(
        out,
        "Storage pools",
        ["NAME", "PATH", "FREE", "ACTIVE"],
        [[p["name"], p["path"], mib(p["available_bytes"] >> 20), p["active"]] for p in pools],
    )


@host_app.command("refresh")
def host_refresh(name: str, wait: bool = WAIT) -> None:
    """Read the host's inventory again."""
    _run(client().post(f"/hosts/{name}/refresh"), wait)


@host_app.command("remove")
def host_remove(name: str, wait: bool = WAIT) -> None:
    """Forget a host that holds no VMs."""
    _run(client().delete(f"/hosts/{name}"), wait)


@cluster_app.command("create")
def cluster_create(
    name: str,
    shared_path: list[str] = typer.Option(
        [], "--shared-path", help="Storage path shared by every node."
    ),
    reserve: int = typer.Option(1, help="Node failures the cluster must absorb."),
    wait: bool = WAIT,
) -> None:
    _run(
        client().post("/clusters", {"name": name, "shared_paths": shared_path, "reserve": reserve}),
        wait,
    )


@cluster_app.command("delete")
def cluster_delete(name: str, wait: bool = WAIT) -> None:
    _run(client().delete(f"/clusters/{name}"), wait)


@cluster_app.command("add-host")
def cluster_add_host(name: str, host: str, wait: bool = WAIT) -> None:
    _run(client().post(f"/clusters/{name}/hosts", {"host": host}), wait)


@cluster_app.command("remove-host")
def cluster_remove_host(name: str, host: str, wait: bool = WAIT) -> None:
    _run(client().delete(f"/clusters/{name}/hosts/{host}"), wait)


@cluster_app.command("list")
def cluster_list(json: bool = JSON) -> None:
    cs = client().get("/clusters")
    if json:
        return emit_json(out, cs)
    table(
        out,
        "Clusters",
        ["NAME", "HOSTS", "RESERVE", "SHARED STORAGE", "VMS"],
        [
            [
                c["name"],
                ", ".join(c["hosts"]),
                c["reserve"],
                ", ".join(c["shared_storage"]),
                len(c["vms"]),
            ]
            for c in cs
        ],
    )


@cluster_app.command("show")
def cluster_show(name: str, json: bool = JSON) -> None:
    c = client().get(f"/clusters/{name}")
    if json:
        return emit_json(out, c)
    fields(out, f"Cluster {name}", c)


__all__ = ["cluster_app", "err", "host_app"]
