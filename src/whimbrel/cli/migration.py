"""whimbrel host migration ... and whimbrel vm migrate."""

from __future__ import annotations

from typing import Any

import typer

from whimbrel.cli.context import client, err, out
from whimbrel.cli.inventory import JSON, WAIT, _run
from whimbrel.cli.render import emit_json, fields, table
from whimbrel.domain.migration import DEFAULT_POLICY

migration_app = typer.Typer(
    help="A host's migration settings (Enable-VMMigration, Set-VMMigrationNetwork, Set-VMHost).",
    no_args_is_help=True,
)


@migration_app.command("show")
def migration_show(host: str, json: bool = JSON) -> None:
    data = client().get(f"/hosts/{host}/migration")
    if json:
        return emit_json(out, data)
    fields(out, f"Migration settings of {host}", data)


@migration_app.command("set")
def migration_set(
    host: str,
    max_live: int = typer.Option(None, "--max-live", help="Live migrations at once (2)."),
    max_storage: int = typer.Option(None, "--max-storage", help="Storage moves at once (2)."),
    network: list[str] = typer.Option(
        None, "--network", help="CIDR that may carry incoming migrations (repeat), or 'any'."
    ),
    address: list[str] = typer.Option(
        None, "--address", help="The host's address with prefix, IP/PREFIX (repeat)."
    ),
    auth: str = typer.Option(None, help="managed (CredSSP's place) or peer (Kerberos')."),
    performance: str = typer.Option(None, help="tcp, compression or parallel."),
    connections: int = typer.Option(None, help="Connections for 'parallel'."),
    encrypt: bool = typer.Option(None, "--encrypt/--no-encrypt", help="TLS for the stream."),
    peer_pki: str = typer.Option(None, help="Peer auth: the host's own certificate directory."),
    wait: bool = WAIT,
) -> None:
    """Change some settings; the others keep their values."""
    body: dict[str, Any] = {
        "max_live_migrations": max_live,
        "max_storage_migrations": max_storage,
        "networks": network or None,
        "addresses": address or None,
        "auth": auth,
        "performance": performance,
        "parallel_connections": connections,
        "encrypt": encrypt,
        "peer_pki": peer_pki,
    }
    _run(client().post(f"/hosts/{host}/migration", body), wait)


@migration_app.command("enable")
def migration_enable(host: str, wait: bool = WAIT) -> None:
    """Allow incoming and outgoing migrations (Enable-VMMigration)."""
    _run(client().post(f"/hosts/{host}/migration", {"enabled": True}), wait)


@migration_app.command("disable")
def migration_disable(host: str, wait: bool = WAIT) -> None:
    """Refuse incoming and outgoing migrations (Disable-VMMigration)."""
    _run(client().post(f"/hosts/{host}/migration", {"enabled": False}), wait)


def show_findings(findings: list[dict[str, Any]]) -> None:
    if not findings:
        out.print("[green]no findings[/]: the move can run")
        return
    table(
        out,
        "Preflight findings",
        ["CODE", "SEVERITY", "SUBJECT", "CAUSE", "FIX"],
        [[f["code"], f["severity"], f["subject"], f["cause"], f["fix"]] for f in findings],
    )


def vm_migrate(
    name: str,
    to: str = typer.Option(
        "",
        "--to",
        help="Destination host (the VM's own for a storage move); with --to-cluster, "
        "the node (default: the best-rated).",
    ),
    to_cluster: str = typer.Option(
        "", "--to-cluster", help="Move to another cluster: its HA role goes along."
    ),
    allow_overcommit: bool = typer.Option(
        False, "--allow-overcommit", help="Accept breaking the destination cluster's reserve."
    ),
    include_storage: bool = typer.Option(
        False, "--include-storage", help="Copy the disks while the VM runs (shared-nothing)."
    ),
    storage_path: str = typer.Option("", help="Pool (name or directory) for the copied disks."),
    quick: bool = typer.Option(False, "--quick", help="Save, move, restore: short outage."),
    check: bool = typer.Option(False, "--check", help="Run preflight only; change nothing."),
    downtime_ms: int = typer.Option(
        DEFAULT_POLICY.downtime_ms, help="Allowed downtime to start with."
    ),
    max_downtime_ms: int = typer.Option(
        DEFAULT_POLICY.max_downtime_ms, help="The most the policy may allow."
    ),
    postcopy: bool = typer.Option(
        False,
        "--postcopy",
        help="Allow post-copy for this move, as its cluster's "
        "'--postcopy when-needed' does: a failed host or link before the last page arrives "
        "pauses the VM until the copy is resumed.",
    ),
    auto_converge: bool = typer.Option(True, "--auto-converge/--no-auto-converge"),
    timeout_per_gib: float = typer.Option(
        DEFAULT_POLICY.timeout_s_per_gib, help="Seconds per GiB before the timeout acts."
    ),
    on_timeout: str = typer.Option("abort", help="abort (stay on the source) or force."),
    bandwidth: int = typer.Option(0, help="MiB/s cap for the stream (0: none)."),
    ignore: list[str] = typer.Option([], "--ignore", help="Accept this finding code (repeat)."),
    json: bool = JSON,
    wait: bool = WAIT,
) -> None:
    """Move a VM: live (with or without its storage), storage only, quick, or offline;
    or to another cluster, its HA role removed there and added in the destination."""
    body = {
        "to": to,
        "to_cluster": to_cluster,
        "allow_overcommit": allow_overcommit,
        "include_storage": include_storage,
        "storage_path": storage_path,
        "quick": quick,
        "downtime_ms": downtime_ms,
        "max_downtime_ms": max_downtime_ms,
        "auto_converge": auto_converge,
        "postcopy": postcopy,
        "timeout_s_per_gib": timeout_per_gib,
        "on_timeout": on_timeout,
        "bandwidth_mib_s": bandwidth,
        "ignore": ignore,
    }
    if check:
        plan = client().post(f"/vms/{name}/migrate/check", body)
        if json:
            return emit_json(out, plan)
        out.print(f"{plan['kind']} move of {name}: {plan['source']} → {plan['dest']}")
        show_findings(plan["findings"])
        if any(f["severity"] == "error" for f in plan["findings"]):
            raise typer.Exit(5)
        return
    job = client().post(f"/vms/{name}/migrate", body)
    _run(job, wait, json)
    if wait:
        done = client().get(f"/jobs/{job['id']}")
        res = (done.get("progress") or {}).get("result")
        if res:
            err.print(
                f"total {res['total_ms']} ms, downtime {res['downtime_ms']} ms, "
                f"{res['memory_mib']} MiB memory, {res['disk_mib']} MiB disk, "
                f"{res['iterations']} passes; strategy: {', '.join(res['strategy']) or 'pre-copy'}"
            )
