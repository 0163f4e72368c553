"""Where a new VM's first disk and CD-ROM come from: a disk image on the host, a
template, an ISO; and the checks that refuse a bad one before anything is created.

A source is read on the host itself (its pools, its first bytes), so that a path that
is not there, a corrupt qcow2 or a file that is no ISO is a coded error and no disk,
record or domain is made."""

from __future__ import annotations

from dataclasses import replace

from sqlalchemy import select
from sqlalchemy.orm import Session

from whimbrel.connections import ConnectionPool
from whimbrel.domain.image import ImageInfo, check_disk_image, check_iso
from whimbrel.errors import InsufficientResources, InvalidInput, NotFound, WrongState, not_found
from whimbrel.ops import OpVmCreate
from whimbrel.store.catalog import Template
from whimbrel.store.models import Host
from whimbrel.store.repo import is_shared_path

MIB = 1 << 20
CLONES = ("full", "linked")


def get_template(s: Session, name: str) -> Template:
    t = s.scalar(select(Template).where(Template.name == name))
    if t is None:
        raise not_found("template", name)
    return t


def with_template(op: OpVmCreate, s: Session) -> OpVmCreate:
    """The op with its template's image and shape wherever the op left them out."""
    if not op.template:
        return op
    if op.image:
        raise InvalidInput(
            "E_SOURCE_CONFLICT",
            f"VM {op.name} is given both an image and template {op.template!r}",
            "give one of --image and --template",
        )
    t = get_template(s, op.template)
    return replace(
        op,
        image=t.path,
        memory_mib=op.memory_mib or t.memory_mib,
        vcpus=op.vcpus or t.vcpus,
        networks=op.networks or tuple(t.networks),
        kernel=op.kernel or t.kernel,
        initrd=op.initrd or t.initrd,
        cmdline=op.cmdline or t.cmdline,
    )


def _read(
    conns: ConnectionPool, host: Host, path: str, code: str, what: str
) -> tuple[ImageInfo, bytes]:
    try:
        return conns.for_host(host.name).image(path)
    except NotFound as exc:
        raise NotFound(code, f"{what}: {exc.cause}", exc.fix, exc.detail) from exc


def check_sources(op: OpVmCreate, s: Session, conns: ConnectionPool, host: Host) -> None:
    """Every source of ``op`` (with its template applied) is there and sound."""
    if op.clone and op.clone not in CLONES:
        raise InvalidInput(
            "E_CLONE_MODE", f"clone mode {op.clone!r} is unknown", "give --clone full or linked"
        )
    if op.template and not op.clone:
        raise InvalidInput(
            "E_CLONE_MODE_REQUIRED",
            f"a VM from template {op.template!r} is either a full copy of its image or a "
            "linked clone on it",
            "say which with --clone full (independent, takes the image's space) or --clone "
            "linked (small and quick; the template stays as long as the VM)",
        )
    if op.image:
        if not op.disks:
            raise InvalidInput(
                "E_IMAGE_NEEDS_POOL",
                f"the image becomes VM {op.name}'s first disk, in a pool to name",
                "give --pool POOL (and --disk-mib N to grow the disk beyond the image)",
            )
        what = f"template {op.template}'s image" if op.template else f"image {op.image}"
        code = "E_TEMPLATE_NOT_ON_HOST" if op.template else "E_IMAGE_NOT_FOUND"
        info, head = _read(conns, host, op.image, code, what)
        check_disk_image(info, head)
        linked = op.clone == "linked"
        if op.ha and linked and not is_shared_path(host, op.image):
            raise _unsupported(op, f"its linked clone's image {op.image} is not on shared storage")
        pool = next((p for p in host.pools if p.name == op.disks[0].pool), None)
        need = 16 * MIB if linked else info.allocation  # a copy skips unwritten blocks
        if pool is not None and pool.available_bytes and need > pool.available_bytes:
            raise InsufficientResources(
                "E_NO_SPACE",
                f"pool {pool.name} on host {host.name} has {pool.available_bytes // MIB} MiB "
                f"free; a copy of {op.image} needs {need // MIB} MiB",
                "free space in the pool, choose another pool, or make a linked clone",
            )
    if op.iso:
        info, head = _read(conns, host, op.iso, "E_ISO_NOT_FOUND", f"ISO {op.iso}")
        check_iso(info, head)
        if op.ha and not is_shared_path(host, op.iso):
            raise _unsupported(op, f"its ISO {op.iso} is not on the cluster's shared storage")
    elif op.boot_cdrom:
        raise InvalidInput(
            "E_BOOT_CDROM_EMPTY",
            f"VM {op.name} is to boot from its CD-ROM, which holds no ISO",
            "give --iso PATH, or boot from the disk",
        )


def _unsupported(op: OpVmCreate, why: str) -> WrongState:
    """VMM's "unsupported cluster configuration", refused at creation."""
    return WrongState(
        "E_HA_UNSUPPORTED_CONFIGURATION",
        f"highly available VM {op.name} would be in an unsupported cluster configuration: {why}",
        "put the file on the cluster's shared storage, or create the VM without HA",
    )
