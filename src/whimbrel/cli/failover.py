"""whimbrel host fence ...: how failover proves a lost host is off."""

from __future__ import annotations

import sys

import typer

from whimbrel.access.vault import is_secret, read_secret
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
    secret_file: list[str] = typer.Option(
        [],
        "--secret-file",
        help="NAME=PATH: a secret option (password=...) read from PATH, or '-' for stdin; "
        "never on the command line, where 'ps' shows it.",
    ),
    wait: bool = WAIT,
) -> None:
    """Set the agent; it is checked to exist here before it is saved, and its secrets are
    stored sealed."""
    options = {}
    for o in option:
        name, sep, value = o.partition("=")
        if not sep or not name:
            raise InvalidInput("E_FENCE_INVALID", f"--option {o!r} is not NAME=VALUE", "")
        if is_secret(name):
            raise InvalidInput(
                "E_SECRET_ON_COMMAND_LINE",
                f"--option {name}=... puts a secret on the command line, where every user of "
                "this machine can read it ('ps')",
                f"put it in a file of mode 0600 and give --secret-file {name}=FILE, or "
                f"--secret-file {name}=- and type it on stdin",
            )
        options[name] = value
    for o in secret_file:
        name, sep, path = o.partition("=")
        if not sep or not name or not path:
            raise InvalidInput("E_FENCE_INVALID", f"--secret-file {o!r} is not NAME=PATH", "")
        options[name] = sys.stdin.readline().rstrip("\n") if path == "-" else read_secret(path)
    body = {"agent": "" if agent == "none" else agent, "options": options}
    _run(client().post(f"/hosts/{host}/fence", body), wait)


@fence_app.command("confirm")
def fence_confirm(
    host: str,
    off: bool = typer.Option(False, "--off", help="You switched it off yourself: no agent is run."),
    wait: bool = WAIT,
) -> None:
    """Your word on a lost HOST: its agent fences it past the fence cap (or, with --off or
    no agent, you say it is off), then its HA VMs restart elsewhere."""
    _run(client().post(f"/hosts/{host}/fence/confirm", {"off": off}), wait)


failover_app = typer.Typer(
    help="The fleet's failover guards: how many hosts may be fenced without your word.",
    no_args_is_help=True,
)


@failover_app.command("show")
def failover_show(json: bool = JSON) -> None:
    data = client().get("/ha")
    if json:
        return emit_json(out, data)
    out.print(
        f"at most {data['fence_cap']} host(s) fenced automatically in "
        f"{data['fence_window_s']} s (and never more than half of a cluster); more wait for "
        "'whimbrel host fence confirm'"
    )
    if data["manager_isolated"]:
        out.print("[red]the manager lost most hosts at once: it fences nothing[/]")


@failover_app.command("set")
def failover_set(
    fence_cap: int | None = typer.Option(None, help="Hosts fenced without your word per window."),
    fence_window_s: int | None = typer.Option(None, "--fence-window-s", help="The window (s)."),
    wait: bool = WAIT,
) -> None:
    _run(client().post("/ha", {"fence_cap": fence_cap, "fence_window_s": fence_window_s}), wait)
