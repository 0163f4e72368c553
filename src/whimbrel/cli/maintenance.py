"""whimbrel host maintenance start|stop: VMM's maintenance mode."""

from __future__ import annotations

from typing import Any

import typer

from whimbrel.cli.context import client, err, out
from whimbrel.cli.inventory import JSON, WAIT
from whimbrel.cli.render import emit_json, mib, table
from whimbrel.errors import WhimbrelError

maintenance_app = typer.Typer(
    help="Maintenance mode: drain a host (HA VMs moved, others saved), then re-admit it.",
    no_args_is_help=True,
)

PRIORITY = {3: "high", 2: "medium", 1: "low", 0: "-"}


def show_plan(p: dict[str, Any]) -> None:
    rows = []
    for i, e in enumerate(p["entries"], 1):
        notes = [f"{f['code']} [{f['severity']}]: {f['cause']}" for f in e["findings"]]
        rows.append(
            [
                e["vm"],
                i,
                e["action"],
                e["to"] or "-",
                mib(e["memory_mib"]) if e["memory_mib"] else "-",
                PRIORITY.get(e["priority"], e["priority"]),
                "; ".join([e["why"], *notes]),
            ]
        )
    table(
        out,
        f"Maintenance plan for host {p['host']}",
        ["VM", "#", "ACTION", "TO", "MEMORY", "PRIORITY", "WHY"],
        rows,
    )
    for w in p["warnings"]:
        err.print(f"[yellow]warning[/]: {w}", highlight=False)
    if p["blocked"]:
        err.print(f"[red]blocked by[/]: {', '.join(p['blocked'])}", highlight=False)


def show_children(job: dict[str, Any]) -> None:
    kids = (job.get("progress") or {}).get("children", [])
    if kids:
        table(
            out,
            f"VMs of job {job['id']}",
            ["VM", "ACTION", "TO", "JOB", "STATE", "MESSAGE"],
            [
                [c["vm"], c["action"], c["to"] or "-", c["job"], c["state"], c["message"]]
                for c in kids
            ],
        )


def _follow(job: dict[str, Any], wait: bool, json: bool = False) -> None:
    c = client()
    if not wait:
        if json:
            return emit_json(out, job)
        out.print(f"job {job['id']} submitted")
        return
    try:
        done = c.follow(job, err)
    except WhimbrelError:
        show_children(c.get(f"/jobs/{job['id']}"))
        raise
    if json:
        return emit_json(out, done)
    show_children(done)
    out.print(f"job {done['id']} {done['kind']} {done['subject']}: [green]{done['state']}[/]")


@maintenance_app.command("start")
def maintenance_start(
    host: str,
    dry_run: bool = typer.Option(False, "--dry-run", help="Show the plan only; change nothing."),
    json: bool = JSON,
    wait: bool = WAIT,
) -> None:
    """Drain HOST: live-migrate its HA VMs, save the others, then take it out of placement.

    If any VM fails to move the host stays in service and VMs already moved stay moved."""
    c = client()
    p = c.get(f"/hosts/{host}/maintenance/plan")
    if dry_run and json:
        return emit_json(out, p)
    show_plan(p)
    if dry_run:
        return
    _follow(c.post(f"/hosts/{host}/maintenance/start"), wait, json)


@maintenance_app.command("stop")
def maintenance_stop(
    host: str,
    move_back: bool = typer.Option(
        False, "--move-back", help="Live-migrate back the VMs the last drain moved away."
    ),
    restart_saved: bool = typer.Option(
        False, "--restart-saved", help="Restore the VMs the last drain saved."
    ),
    wait: bool = WAIT,
) -> None:
    """Re-admit HOST to placement.  VMs stay where they are unless asked."""
    body = {"move_back": move_back, "restart_saved": restart_saved}
    _follow(client().post(f"/hosts/{host}/maintenance/stop", body), wait)
