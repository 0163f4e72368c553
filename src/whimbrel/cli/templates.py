"""whimbrel template create|list|show|delete: VM templates, cloned by 'vm create --template'."""

from __future__ import annotations

import typer

from whimbrel.cli.context import client, out
from whimbrel.cli.inventory import JSON, WAIT, _run
from whimbrel.cli.render import emit_json, table

template_app = typer.Typer(
    help="VM templates: a stopped VM's disk and shape.", no_args_is_help=True
)


@template_app.command("create")
def template_create(
    name: str,
    vm: str = typer.Option(..., "--from", help="A stopped VM whose first disk is copied."),
    pool: str = typer.Option(
        ..., help="Pool of the VM's host for the image; the cluster's shared one serves all nodes."
    ),
    wait: bool = WAIT,
) -> None:
    """Copy a stopped VM's first disk into a pool, with its memory, vCPUs, networks and boot."""
    _run(client().post("/templates", {"name": name, "vm": vm, "pool": pool}), wait)


@template_app.command("list")
def template_list(json: bool = JSON) -> None:
    rows = client().get("/templates")
    if json:
        emit_json(out, rows)
        return
    cols = ["NAME", "HOST", "POOL", "SIZE MiB", "MEMORY MiB", "FROM VM", "PATH"]
    keys = ["name", "host", "pool", "size_bytes", "memory_mib", "source_vm", "path"]
    for r in rows:
        r["size_bytes"] = r["size_bytes"] >> 20
    table(out, "Templates", cols, [[r[k] for k in keys] for r in rows])


@template_app.command("show")
def template_show(name: str) -> None:
    emit_json(out, client().get(f"/templates/{name}"))


@template_app.command("delete")
def template_delete(name: str, wait: bool = WAIT) -> None:
    """Delete a template and its image; refused while a linked clone stands on it."""
    _run(client().delete(f"/templates/{name}"), wait)
