"""whimbrel lab ...: the local lab of real libvirt hosts."""

from __future__ import annotations

import time

import typer

from whimbrel.cli.context import client, err, out, settings
from whimbrel.cli.inventory import JSON
from whimbrel.cli.render import emit_json, table
from whimbrel.errors import NotFound
from whimbrel.ha.heartbeat import HEARTBEAT_DIR
from whimbrel.lab import faults
from whimbrel.lab.directory import SambaDc
from whimbrel.lab.directory import from_env as dc_from_env
from whimbrel.lab.lab import Lab, status_dicts
from whimbrel.lab.topology import from_env, shared_dir

lab_app = typer.Typer(
    help="The local lab: KVM hosts in network namespaces on this machine.", no_args_is_help=True
)


def _lab() -> Lab:
    return Lab(from_env(), settings())


def _show(json: bool) -> None:
    lab = _lab()
    st = lab.status()
    if json:
        return emit_json(out, {"accel": lab.accel(), "hosts": status_dicts(st)})
    table(
        out,
        f"Lab {lab.spec.name!r} in {lab.spec.root} (guests: {lab.accel().get('accel', '?')})",
        ["HOST", "CLUSTER", "URI", "MIGRATION NET", "LIBVIRTD", "ANSWERS", "DOMAINS"],
        [
            [
                s.name,
                s.cluster,
                s.uri,
                s.migration_ip,
                s.libvirtd_pid or "down",
                "yes" if s.answering else "no",
                s.domains,
            ]
            for s in st
        ],
    )


@lab_app.command("up")
def lab_up(json: bool = JSON) -> None:
    """Create the lab's hosts (idempotent: what already works is left alone)."""
    _lab().up(say=lambda m: err.print(m))
    _show(json)


@lab_app.command("status")
def lab_status(json: bool = JSON) -> None:
    _show(json)


@lab_app.command("down")
def lab_down() -> None:
    """Remove every namespace, bridge, process and file of the lab."""
    _lab().down(say=lambda m: err.print(m))


@lab_app.command("enroll")
def lab_enroll() -> None:
    """Register the lab's clusters and hosts; known hosts get the lab's migration settings."""
    c = client()
    lab = _lab()
    spec = lab.spec
    for cluster in spec.clusters:
        try:
            c.get(f"/clusters/{cluster}")
        except NotFound:
            c.follow(
                c.post("/clusters", {"name": cluster, "shared_paths": [shared_dir(cluster)]}), err
            )
            out.print(f"cluster {cluster} created")
        # The manager's machine sees the lab's shared storage under the lab's own root.
        hb = str(spec.cluster_dir(cluster) / "shared" / HEARTBEAT_DIR)
        if c.get(f"/clusters/{cluster}")["heartbeat_dir"] != hb:
            c.follow(c.post(f"/clusters/{cluster}/settings", {"heartbeat_dir": hb}), err)
    for h in spec.hosts:
        try:
            c.get(f"/hosts/{h.name}")
            # Known hosts are read again: a lab rebuilt since has none of the old domains.
            c.follow(c.post(f"/hosts/{h.name}/refresh"), err)
        except NotFound:
            c.follow(c.post("/hosts", {"name": h.name, "uri": h.uri, "cluster": h.cluster}), err)
            out.print(f"host {h.name} added ({h.uri}, cluster {h.cluster})")
        # Known hosts too: a store enrolled before these settings existed converges.
        c.follow(c.post(f"/hosts/{h.name}/migration", h.migration_settings), err)
        c.follow(c.post(f"/hosts/{h.name}/fence", lab.fence_settings(h.name)), err)


@lab_app.command("kill-host")
def lab_kill_host(name: str) -> None:
    """Pull a lab host's plug: SIGKILL libvirtd, virtlockd and every QEMU it ran."""
    pids = _lab().kill_host(name)
    out.print(f"host {name}: killed {len(pids)} processes")


@lab_app.command("start-host")
def lab_start_host(name: str) -> None:
    """Start a killed lab host's daemons again."""
    _lab().start_host(name)
    out.print(f"host {name}: up")


@lab_app.command("isolate")
def lab_isolate(name: str) -> None:
    """Cut a lab host's network links: it keeps running, unseen (a split brain to survive)."""
    _lab().isolate(name)
    out.print(f"host {name}: links cut (its VMs still run)")


@lab_app.command("connect")
def lab_connect(name: str) -> None:
    """Mend the links 'lab isolate' cut."""
    _lab().isolate(name, cut=False)
    out.print(f"host {name}: links up")


@lab_app.command("hang-libvirtd")
def lab_hang_libvirtd(
    name: str, seconds: float = typer.Option(30.0, help="How long it stays frozen.")
) -> None:
    """Freeze HOST's libvirtd (SIGSTOP) for a while, then let it go on: a hung daemon."""
    lab = _lab()
    faults.freeze_libvirtd(lab, name)
    err.print(f"libvirtd of {name} frozen for {seconds:g} s")
    try:
        time.sleep(seconds)
    finally:
        faults.freeze_libvirtd(lab, name, frozen=False)
    err.print(f"libvirtd of {name} runs again")


@lab_app.command("restart-libvirtd")
def lab_restart_libvirtd(name: str) -> None:
    """Kill HOST's libvirtd and start it again; its VMs run on."""
    faults.restart_libvirtd(_lab(), name)
    err.print(f"libvirtd of {name} restarted")


@lab_app.command("cut-storage")
def lab_cut_storage(name: str) -> None:
    """HOST can no longer write its cluster's shared storage (its heartbeat stops)."""
    faults.cut_storage(_lab(), name)
    err.print(f"{name} cut from its shared storage")


@lab_app.command("mend-storage")
def lab_mend_storage(name: str) -> None:
    faults.cut_storage(_lab(), name, cut=False)
    err.print(f"{name} writes its shared storage again")


@lab_app.command("cut-manager")
def lab_cut_manager() -> None:
    """This machine (the manager) loses every lab host; the hosts still reach each other."""
    faults.cut_manager(_lab())
    err.print("the manager's link to the lab is cut")


@lab_app.command("mend-manager")
def lab_mend_manager() -> None:
    faults.cut_manager(_lab(), cut=False)
    err.print("the manager's link to the lab is back")


@lab_app.command("untrust")
def lab_untrust(name: str) -> None:
    """Break peer trust in one direction: other hosts refuse NAME as a migration source."""
    _lab().untrust(name)
    out.print(f"host {name}: other hosts no longer trust it as a peer (moves to it still work)")


@lab_app.command("trust")
def lab_trust(name: str) -> None:
    """Give NAME back its peer identity from the lab CA."""
    _lab().retrust(name)
    out.print(f"host {name}: trusted as a peer again")


directory_app = typer.Typer(
    help="The lab's Active Directory: a Samba domain controller with Hyper-V computer accounts.",
    no_args_is_help=True,
)
lab_app.add_typer(directory_app, name="directory")


def _dc() -> SambaDc:
    return SambaDc(dc_from_env())


@directory_app.command("up")
def directory_up() -> None:
    """Provision and start it (idempotent); print the settings that point Whimbrel at it."""
    dc = _dc()
    dc.up()
    err.print(
        f"domain controller {dc.spec.fqdn} at ldaps://{dc.spec.ip}, accounts: "
        + ", ".join(dc.spec.computers)
    )
    for k, v in dc.env().items():
        out.print(f"export {k}={v}", highlight=False)


@directory_app.command("down")
def directory_down() -> None:
    """Stop it and delete it."""
    _dc().down()
