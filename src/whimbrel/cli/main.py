"""Entry point: ``whimbrel``.  Errors print code, cause and fix; never a traceback."""

from __future__ import annotations

import sys

import typer

from whimbrel.cli.access import audit_app, login, role_app, token_app, user_app
from whimbrel.cli.context import err
from whimbrel.cli.failover import failover_app, fence_app
from whimbrel.cli.ha import cluster_set, cluster_verify, ha_app, vm_place, vm_repair
from whimbrel.cli.heartbeat import heartbeat_app
from whimbrel.cli.hyperv import hyperv_app
from whimbrel.cli.inventory import cluster_app, host_app
from whimbrel.cli.jobs import job_app
from whimbrel.cli.lab import lab_app
from whimbrel.cli.maintenance import maintenance_app
from whimbrel.cli.managers import manager_app
from whimbrel.cli.migration import migration_app, vm_migrate
from whimbrel.cli.pki import pki_app
from whimbrel.cli.serve import console, serve
from whimbrel.cli.templates import template_app
from whimbrel.cli.vms import vm_app
from whimbrel.errors import WhimbrelError, exit_code

app = typer.Typer(
    help="Whimbrel: live migration and high availability for KVM and Hyper-V hosts.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
)
app.add_typer(lab_app, name="lab")
app.add_typer(host_app, name="host")
app.add_typer(cluster_app, name="cluster")
app.add_typer(vm_app, name="vm")
app.add_typer(job_app, name="job")
app.add_typer(template_app, name="template")
host_app.add_typer(migration_app, name="migration")
host_app.add_typer(maintenance_app, name="maintenance")
host_app.add_typer(fence_app, name="fence")
vm_app.command("migrate")(vm_migrate)
vm_app.add_typer(ha_app, name="ha")
vm_app.command("place")(vm_place)
vm_app.command("repair")(vm_repair)
cluster_app.command("set")(cluster_set)
cluster_app.command("verify")(cluster_verify)
app.add_typer(failover_app, name="failover")
app.add_typer(heartbeat_app, name="heartbeat")
app.add_typer(pki_app, name="pki")
app.add_typer(manager_app, name="manager")
app.add_typer(hyperv_app, name="hyperv")
app.add_typer(user_app, name="user")
app.add_typer(role_app, name="role")
app.add_typer(token_app, name="token")
app.add_typer(audit_app, name="audit")
app.command("login")(login)
app.command("serve")(serve)
app.command("console")(console)


def report(exc: WhimbrelError) -> int:
    err.print(f"[bold red]error {exc.code}[/]: {exc.cause}", highlight=False, soft_wrap=True)
    if exc.fix:
        err.print(f"  [bold]fix[/]: {exc.fix}", highlight=False, soft_wrap=True)
    if exc.detail:
        err.print(
            f"  detail: {exc.detail.strip()[:1500]}", highlight=False, markup=False, soft_wrap=True
        )
    return exit_code(exc)


def main() -> None:
    try:
        app()
    except WhimbrelError as exc:
        sys.exit(report(exc))


if __name__ == "__main__":
    main()
