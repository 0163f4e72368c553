"""whimbrel cluster set|verify, whimbrel vm ha|place|repair: clusters and HA VMs."""

from __future__ import annotations

from typing import Any

import typer

from whimbrel.cli.context import client, out
from whimbrel.cli.inventory import JSON, WAIT, _run
from whimbrel.cli.migration import show_findings
from whimbrel.cli.render import emit_json, table

ha_app = typer.Typer(help="High availability of a VM in its cluster.", no_args_is_help=True)
PRIORITIES = {"high": 3, "medium": 2, "low": 1, "none": 0}


def show_overcommit(name: str, oc: dict[str, Any] | None) -> None:
    if not oc:
        out.print(f"cluster {name}: reserve not computed yet (run 'whimbrel cluster verify')")
        return
    state = "[red]over-committed[/]" if oc["overcommitted"] else "[green]keeps its reserve[/]"
    out.print(
        f"cluster {name}: {state} (reserve {oc['reserve']}, {oc['nodes_up']} node(s) up): "
        f"{oc['reason']}"
    )


def cluster_set(
    name: str,
    reserve: int | None = typer.Option(None, help="Node failures the cluster must absorb."),
    detection_s: int | None = typer.Option(
        None,
        "--detection-s",
        help="Seconds both liveness channels of a node must be silent before it is lost "
        "(default 15; its heartbeat service stops its own VMs after 60 % of it).",
    ),
    isolation_response: str | None = typer.Option(
        None,
        help="What a node cut from its peers but not from its storage does with its HA VMs: "
        "leave (default), shutdown or power-off (then they restart elsewhere).",
    ),
    heartbeat_dir: str | None = typer.Option(
        None,
        help="Where this machine mounts the cluster's heartbeat directory "
        "('' for SHARED_PATH/heartbeat).",
    ),
    postcopy: str | None = typer.Option(
        None,
        help="never (default) or when-needed: a live migration that would need more than "
        "its target downtime switches to post-copy after its first pass. The guest then runs "
        "on the destination while its last pages follow: a host or link failing before they "
        "arrive pauses the VM until the copy is resumed.",
    ),
    wait: bool = WAIT,
) -> None:
    """Set the cluster reserve, failure detection and migration policy; the over-commit
    verdict is recomputed."""
    body = {
        "reserve": reserve,
        "detection_s": detection_s,
        "isolation_response": isolation_response,
        "heartbeat_dir": heartbeat_dir,
        "postcopy": postcopy,
    }
    _run(client().post(f"/clusters/{name}/settings", body), wait)
    c = client().get(f"/clusters/{name}")
    show_overcommit(name, c["overcommit"])
    out.print(
        f"cluster {name}: a node is lost after {c['detection_s']} s of silence on both "
        f"channels; isolation response {c['isolation_response']}; post-copy {c['postcopy']}"
    )


def cluster_verify(name: str, json: bool = JSON) -> None:
    """Recompute the reserve and every HA VM's configuration findings."""
    c = client().post(f"/clusters/{name}/verify", {})
    if json:
        return emit_json(out, c)
    show_overcommit(name, c["overcommit"])
    show_findings([f for fs in c["findings"].values() for f in fs])
    if c["unsupported"] or (c["overcommit"] or {}).get("overcommitted"):
        raise typer.Exit(5)


def _set(name: str, enabled: bool, priority: str, allow_overcommit: bool, wait: bool) -> None:
    if priority not in PRIORITIES:
        raise typer.BadParameter(f"one of {', '.join(PRIORITIES)}", param_hint="--priority")
    body = {
        "enabled": enabled,
        "priority": PRIORITIES[priority],
        "allow_overcommit": allow_overcommit,
    }
    _run(client().post(f"/vms/{name}/ha", body), wait)


@ha_app.command("enable")
def ha_enable(
    name: str,
    priority: str = typer.Option("medium", help="Restart order: high, medium, low, none."),
    allow_overcommit: bool = typer.Option(
        False, "--allow-overcommit", help="Accept an over-committed cluster (warned)."
    ),
    wait: bool = WAIT,
) -> None:
    """Make the VM highly available in its cluster (the failover cluster's VM role)."""
    _set(name, True, priority, allow_overcommit, wait)


@ha_app.command("disable")
def ha_disable(name: str, wait: bool = WAIT) -> None:
    _set(name, False, "medium", False, wait)


def vm_place(
    name: str,
    goal: str = typer.Option("balance", help="balance (spread load) or consolidate."),
    include_storage: bool = typer.Option(False, "--include-storage", help="Disks are copied."),
    json: bool = JSON,
) -> None:
    """Rate every host for the VM, 0 to 5 stars, and say why."""
    p = client().get(f"/vms/{name}/placement?goal={goal}&include_storage={include_storage}")
    if json:
        return emit_json(out, p)
    table(
        out,
        f"Host ratings for VM {name} ({p['goal']})",
        ["HOST", "STARS", "WHY"],
        [[r["host"], f"{r['stars']:.1f}", "; ".join(r["reasons"])] for r in p["ratings"]],
    )
    out.print(f"best host: {p['best'] or 'none can take it'}")


def vm_repair(name: str, json: bool = JSON) -> None:
    """Look at the VM's configuration again and refresh its cluster state."""
    v = client().post(f"/vms/{name}/repair", {})
    if json:
        return emit_json(out, v)
    show_findings(v["findings"])
