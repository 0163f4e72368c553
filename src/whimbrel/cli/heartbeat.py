"""whimbrel heartbeat run: the storage heartbeat service, run on each clustered host."""

from __future__ import annotations

import typer

from whimbrel.ha import hostd
from whimbrel.ha.heartbeat import INTERVAL_S

heartbeat_app = typer.Typer(
    help="The storage heartbeat each host of a cluster runs (its second liveness channel).",
    no_args_is_help=True,
)


@heartbeat_app.command("run")
def heartbeat_run(
    host: str = typer.Option(..., help="This host's name in Whimbrel."),
    storage: str = typer.Option(..., help="The cluster's shared storage path on this host."),
    gateway: list[str] = typer.Option([], help="An address to probe besides the peers."),
    interval: float = typer.Option(INTERVAL_S, help="Seconds between beats."),
) -> None:
    """Renew this host's heartbeat on the shared storage every second, report isolation,
    apply the isolation response, and stop this host's VMs if the heartbeat cannot be
    renewed (run it as a service beside libvirtd; see the README)."""
    args = ["--host", host, "--storage", storage, "--interval", str(interval)]
    for g in gateway:
        args += ["--gateway", g]
    hostd.main(args)
