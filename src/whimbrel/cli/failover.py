"""whimbrel host fence ...: how failover proves a lost host is off."""

from __future__ import annotations

import typer

from whimbrel.cli.context import client, out
from whimbrel.cli.inventory import JSON, WAIT, _run
from whimbrel.cli.render import emit_json, fields
from whimbrel.errors import InvalidInput

fence_app = typer.Typer(
    help="Fencing: the agent that powers a lost host off before its HA VMs restart elsewhere.",
    no_args_is_help=True,
)


@fence_app.command("show")
def fence_show(host: str, json: bool = JSON) -> None:
    data = client().get(f"/hosts/{host}/fence")
    if json:
        return emit_json(out, data)
    fields(out, f"Fencing of {host}", data)


@fence_app.command("set")
def fence_set(
    host: str,
    agent: str = typer.Option(
        ..., help="'lab', a fence-agents program (fence_ipmilan, fence_redfish, ...), or 'none'."
    ),
    option: list[str] = typer.Option(
        [], "--option", help="NAME=VALUE for the agent, as on its stdin (repeat): ip=, username=."
    ),
    wait: bool = WAIT,
) -> None:
    """Set the agent; it is checked to exist here before it is saved."""
    options = {}
    for o in option:
        name, sep, value = o.partition("=")
        if not sep or not name:
            raise InvalidInput("E_FENCE_INVALID", f"--option {o!r} is not NAME=VALUE", "")
        options[name] = value
    body = {"agent": "" if agent == "none" else agent, "options": options}
    _run(client().post(f"/hosts/{host}/fence", body), wait)


@fence_app.command("confirm")
def fence_confirm(host: str, wait: bool = WAIT) -> None:
    """You switched the lost HOST off yourself: restart its HA VMs elsewhere now."""
    _run(client().post(f"/hosts/{host}/fence/confirm"), wait)
