"""whimbrel manager list: the replicas sharing the store, and which one leads."""

from __future__ import annotations

import typer

from whimbrel.cli.context import client, out
from whimbrel.cli.inventory import JSON
from whimbrel.cli.render import emit_json, table

manager_app = typer.Typer(
    help="The manager's replicas: which are alive, which one leads (monitor, failover).",
    no_args_is_help=True,
)


@manager_app.command("list")
def manager_list(json: bool = JSON) -> None:
    rows = client().get("/managers")
    if json:
        return emit_json(out, rows)
    table(
        out,
        "Manager replicas",
        ["NAME", "STATE", "EPOCH", "URL", "PID", "MACHINE", "SEEN", "UP", "JOBS"],
        [
            [
                r["name"],
                r["state"],
                r["epoch"] if r["epoch"] is not None else "-",
                r["url"] or "-",
                r["pid"],
                r["machine"],
                f"{r['seen_s_ago']:.1f} s ago",
                f"{r['up_s']:.0f} s",
                r["jobs"],
            ]
            for r in rows
        ],
    )
