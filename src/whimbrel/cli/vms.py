"""whimbrel vm ..."""

from __future__ import annotations

import typer

from whimbrel.cli.context import client, out
from whimbrel.cli.inventory import JSON, WAIT, _run
from whimbrel.cli.render import emit_json, fields, heartbeat_text, table
from whimbrel.errors import InvalidInput
from whimbrel.lab.topology import GUEST_DIR

vm_app = typer.Typer(
    help="Virtual machines: create, start, stop, save, restore, delete.", no_args_is_help=True
)


@vm_app.command("create")
def vm_create(
    name: str,
    host: str = typer.Option(
        "", help="Host to create the VM on (default: the best-rated host with the pools)."
    ),
    memory: int | None = typer.Option(
        None, "--memory", help="MiB (default 256, or the template's)."
    ),
    vcpus: int | None = typer.Option(None, help="Default 1, or the template's."),
    disk_mib: list[int] = typer.Option(
        [], "--disk-mib", help="Add a disk of this size (repeatable)."
    ),
    image: str = typer.Option(
        "", help="A disk image (qcow2 or raw) in a pool of the host: the first disk's content."
    ),
    template: str = typer.Option("", help="A template ('whimbrel template list')."),
    clone: str = typer.Option(
        "", help="full (a copy) or linked (an overlay on the image); required with --template."
    ),
    iso: str = typer.Option("", help="An ISO image in a pool of the host, in the CD-ROM drive."),
    boot: str = typer.Option("disk", help="Boot from the disk or the cdrom."),
    pool: str = typer.Option("", help="Storage pool for the disks (default: local)."),
    network: list[str] = typer.Option([], "--network", help="Attach a NIC to this network."),
    lab_guest: bool = typer.Option(False, "--lab-guest", help="Boot the lab's guest kernel."),
    workload_mib: int = typer.Option(16, help="Lab guest: MiB of memory its workload dirties."),
    workload_rate: int = typer.Option(4, help="Lab guest: MiB/s it dirties (0 = flat out)."),
    kernel: str = typer.Option("", help="Kernel to boot directly (path on the host)."),
    initrd: str = typer.Option(""),
    cmdline: str = typer.Option(""),
    start: bool = typer.Option(True, "--start/--no-start"),
    ha: bool = typer.Option(False, "--ha", help="Highly available in the host's cluster."),
    allow_overcommit: bool = typer.Option(
        False, "--allow-overcommit", help="With --ha: accept an over-committed cluster."
    ),
    wait: bool = WAIT,
) -> None:
    """Create a VM (disks, definition, inventory record) and start it."""
    if boot not in ("disk", "cdrom"):
        raise InvalidInput("E_BOOT_DEVICE", f"--boot {boot!r}", "give --boot disk or --boot cdrom")
    if (image or template) and not disk_mib:
        disk_mib = [0]  # the first disk is the image's, at its own size
    if pool and not disk_mib:
        raise InvalidInput(
            "E_POOL_WITHOUT_DISK",
            f"--pool {pool} was given but no disk to put in it",
            "add --disk-mib SIZE for each disk, or leave --pool out",
        )
    pool = pool or "local"
    if lab_guest:
        kernel = kernel or f"{GUEST_DIR}/vmlinuz"
        initrd = initrd or f"{GUEST_DIR}/initrd.img"
        workload = f"workload_mib={workload_mib} workload_rate={workload_rate}"
        cmdline = cmdline or f"console=ttyS0 quiet panic=-1 {workload}"
    body = {
        "name": name,
        "host": host,
        "memory_mib": memory,
        "vcpus": vcpus,
        "disks": [{"size_mib": m, "pool": pool} for m in disk_mib],
        "networks": network,
        "kernel": kernel,
        "initrd": initrd,
        "cmdline": cmdline,
        "start": start,
        "ha": ha,
        "allow_overcommit": allow_overcommit,
        "image": image,
        "template": template,
        "clone": clone,
        "iso": iso,
        "boot_cdrom": boot == "cdrom",
    }
    _run(client().post("/vms", body), wait)


@vm_app.command("eject")
def vm_eject(name: str, wait: bool = WAIT) -> None:
    """Take the ISO out of a VM's CD-ROM drive (running or not)."""
    _run(client().post(f"/vms/{name}/cdrom", {"iso": ""}), wait)


@vm_app.command("insert")
def vm_insert(
    name: str,
    iso: str = typer.Option(..., help="An ISO image in a pool of the VM's host."),
    wait: bool = WAIT,
) -> None:
    """Put an ISO into a VM's CD-ROM drive."""
    _run(client().post(f"/vms/{name}/cdrom", {"iso": iso}), wait)


@vm_app.command("import")
def vm_import(
    name: str,
    host: str = typer.Option(..., help="The host that has the domain."),
    wait: bool = WAIT,
) -> None:
    """Adopt a domain a host already has: recorded as it is, nothing on the host changed."""
    _run(client().post("/vms/import", {"host": host, "name": name}), wait)


@vm_app.command("list")
def vm_list(
    json: bool = JSON,
    heartbeat: bool = typer.Option(
        True, "--heartbeat/--no-heartbeat", help="Read guest heartbeats."
    ),
    host: str = typer.Option("", help="Only the VMs of this host."),
    cluster: str = typer.Option("", help="Only the VMs of this cluster."),
    state: str = typer.Option("", help="Only VMs in this state (running, stopped, ...)."),
) -> None:
    """Every VM (read a page at a time), with its guest's heartbeat unless told not to."""
    given = {"host": host, "cluster": cluster, "state": state}
    query = {k: v for k, v in given.items() if v}
    if heartbeat:  # read from the hosts: a smaller page
        query |= {"heartbeat": "true", "limit": "200"}
    vms = client().pages("/vms", **query)
    beats = {v["name"]: v.get("heartbeat") for v in vms}
    if json:
        return emit_json(out, [v | {"heartbeat": beats.get(v["name"])} for v in vms])
    table(
        out,
        "VMs",
        ["NAME", "HOST", "CLUSTER", "STATE", "MEMORY", "VCPUS", "DISKS", "HEARTBEAT"],
        [
            [
                v["name"],
                v["host"],
                v["cluster"] or "-",
                v["state"],
                f"{v['memory_mib']} MiB",
                v["vcpus"],
                ", ".join(d["pool"] for d in v["disks"]) or "-",
                heartbeat_text(beats.get(v["name"])),
            ]
            for v in vms
        ],
    )


@vm_app.command("show")
def vm_show(name: str, json: bool = JSON) -> None:
    v = client().get(f"/vms/{name}")
    v["heartbeat"] = (
        client().get(f"/vms/{name}/heartbeat")["heartbeat"] if v["state"] == "running" else None
    )
    if json:
        return emit_json(out, v)
    disks = v.pop("disks")
    v["heartbeat"] = heartbeat_text(v["heartbeat"])
    fields(out, f"VM {name}", v)
    table(
        out,
        "Disks",
        ["TARGET", "PATH", "SIZE", "POOL", "SHARED"],
        [
            [d["target"], d["path"], f"{d['size_bytes'] >> 20} MiB", d["pool"], d["shared"]]
            for d in disks
        ],
    )


@vm_app.command("start")
def vm_start(name: str, wait: bool = WAIT) -> None:
    """Start a stopped VM, or resume a saved one."""
    _run(client().post(f"/vms/{name}/start"), wait)


@vm_app.command("stop")
def vm_stop(
    name: str,
    force: bool = typer.Option(
        False, "--force", help="Power off at once instead of shutting down."
    ),
    timeout: float = typer.Option(60.0, help="Seconds to wait for the guest to shut down."),
    wait: bool = WAIT,
) -> None:
    _run(client().post(f"/vms/{name}/stop", {"force": force, "timeout_s": timeout}), wait)


@vm_app.command("save")
def vm_save(name: str, wait: bool = WAIT) -> None:
    """Save memory and device state to the host's disk and stop (resume with 'restore')."""
    _run(client().post(f"/vms/{name}/save"), wait)


@vm_app.command("restore")
def vm_restore(name: str, wait: bool = WAIT) -> None:
    """Resume a saved VM from where it was."""
    _run(client().post(f"/vms/{name}/restore"), wait)


@vm_app.command("delete")
def vm_delete(
    name: str,
    force: bool = typer.Option(False, "--force", help="Power the VM off first if it runs."),
    wait: bool = WAIT,
) -> None:
    """Delete a VM with its disk images."""
    _run(client().delete(f"/vms/{name}", params={"force": force}), wait)
