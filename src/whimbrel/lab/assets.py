"""Build the lab guest: kernel from Debian's cloud kernel package, busybox initramfs.

The kernel package is downloaded and unpacked into a cache, never installed:
installing it would write /boot and run update-initramfs on the machine.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from whimbrel.errors import LabError

GUEST_SRC = Path(__file__).parent / "guest"
# Drivers the guest needs; their dependencies come from modules.dep.
WANTED_MODULES = ("virtio_pci", "virtio_console", "virtio_blk", "virtio_net", "button", "evdev")


@dataclass(frozen=True)
class GuestImage:
    kernel: Path
    initrd: Path


def _run(cmd: list[str], cwd: Path | None = None) -> str:
    try:
        out = subprocess.run(cmd, cwd=cwd, check=True, capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise LabError(
            "E_LAB_TOOL_MISSING",
            f"{cmd[0]} is not installed",
            "run 'make deps' (or the README's first command) to install the lab's packages",
        ) from exc
    except subprocess.CalledProcessError as exc:
        raise LabError(
            "E_LAB_COMMAND",
            f"{' '.join(cmd)} failed",
            "read the detail; the lab's packages may be missing or the package lists stale",
            exc.stderr[-2000:],
        ) from exc
    return out.stdout


def kernel_package() -> str:
    """The versioned package that Debian's linux-image-cloud-amd64 points at today."""
    out = _run(["apt-cache", "depends", "linux-image-cloud-amd64"])
    for line in out.splitlines():
        name = line.strip().removeprefix("Depends:").strip()
        if name.startswith("linux-image-") and name.endswith("-cloud-amd64") and name[12].isdigit():
            return name
    raise LabError(
        "E_LAB_KERNEL",
        "apt knows no linux-image-cloud-amd64 package",
        "run 'apt-get update' so the package lists include Debian's cloud kernel",
        out,
    )


def fetch_kernel(cache: Path) -> Path:
    """Unpack the cloud kernel package into ``cache``; return the unpacked tree."""
    existing = sorted(cache.glob("kernel-*/boot/vmlinuz-*"))
    if existing:
        return existing[-1].parent.parent
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    try:
        pkg = kernel_package()
        _run(["apt-get", "download", pkg], cwd=debs)
    except LabError:
        # Stale package lists name a version the mirror no longer has: refresh once.
        _run(["apt-get", "update", "-q"])
        pkg = kernel_package()
        _run(["apt-get", "download", pkg], cwd=debs)
    deb = sorted(debs.glob(f"{pkg}_*.deb"))[-1]
    tree = cache / f"kernel-{pkg.removeprefix('linux-image-')}"
    tmp = tree.with_suffix(".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    _run(["dpkg-deb", "-x", str(deb), str(tmp)])
    tmp.rename(tree)
    deb.unlink()
    return tree


def _depends(ko: Path) -> list[str]:
    """The ``depends=`` entry of a module's .modinfo section (no depmod needed)."""
    data = ko.read_bytes()
    i = data.find(b"\0depends=")
    if i < 0:
        return []
    raw = data[i + 9 : data.index(b"\0", i + 1)].decode()
    return [d for d in raw.split(",") if d]


def module_order(tree: Path, wanted: tuple[str, ...] = WANTED_MODULES) -> list[Path]:
    """Module files to load, dependencies first.

    The package ships no modules.dep (depmod writes it at install time), so the
    dependencies are read from each module's own .modinfo.
    """
    by_name = {
        p.name.removesuffix(".ko").replace("-", "_"): p
        for p in (tree / "lib/modules").rglob("*.ko")
    }
    order: list[Path] = []

    def visit(name: str) -> None:
        ko = by_name.get(name.replace("-", "_"))
        if ko is None:
            raise LabError(
                "E_LAB_KERNEL",
                f"the guest kernel has no module {name}",
                "use a Debian cloud kernel",
            )
        for dep in _depends(ko):
            visit(dep)
        if ko not in order:
            order.append(ko)

    for name in wanted:
        visit(name)
    return order


class Cpio:
    """A minimal newc archive writer: the initramfs format the kernel unpacks."""

    def __init__(self) -> None:
        self.buf = io.BytesIO()
        self.ino = 1

    def _entry(self, name: str, mode: int, data: bytes = b"") -> None:
        encoded = name.encode() + b"\0"
        fields = [self.ino, mode, 0, 0, 1, 0, len(data), 0, 0, 0, 0, len(encoded), 0]
        header = b"070701" + b"".join(b"%08X" % f for f in fields)
        self.buf.write(header + encoded)
        self.buf.write(b"\0" * (-(len(header) + len(encoded)) % 4))
        self.buf.write(data)
        self.buf.write(b"\0" * (-len(data) % 4))
        self.ino += 1

    def dir(self, name: str) -> None:
        self._entry(name, 0o040755)

    def file(self, name: str, data: bytes, mode: int = 0o644) -> None:
        self._entry(name, 0o100000 | mode, data)

    def finish(self) -> bytes:
        self._entry("TRAILER!!!", 0)
        return self.buf.getvalue()


def build_workload(out: Path) -> Path:
    src = GUEST_SRC / "workload.c"
    binary = out / "workload"
    if not binary.exists() or binary.stat().st_mtime < src.stat().st_mtime:
        _run(["gcc", "-O2", "-static", "-Wall", "-o", str(binary), str(src)])
    return binary


def build_guest(cache: Path, out: Path) -> GuestImage:
    """Kernel + initramfs in ``out``; rebuilt only when an input changed."""
    out.mkdir(parents=True, exist_ok=True)
    tree = fetch_kernel(cache)
    kernel_src = next((tree / "boot").glob("vmlinuz-*"))
    workload = build_workload(cache)
    busybox = shutil.which("busybox")
    if busybox is None:
        raise LabError(
            "E_LAB_TOOL_MISSING", "busybox is not installed", "apt-get install busybox-static"
        )
    mods = module_order(tree)
    inputs = [kernel_src, workload, Path(busybox), GUEST_SRC / "init", *mods]
    digest = hashlib.sha256()
    for p in inputs:
        st = p.stat()
        digest.update(f"{p}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    image = GuestImage(out / "vmlinuz", out / "initrd.img")
    stamp = out / "inputs.sha256"
    if stamp.exists() and stamp.read_text() == digest.hexdigest() and image.initrd.exists():
        return image
    shutil.copyfile(kernel_src, image.kernel)
    cpio = Cpio()
    for d in ("bin", "sbin", "dev", "proc", "sys", "tmp", "lib", "lib/modules"):
        cpio.dir(d)
    cpio.file("bin/busybox", Path(busybox).read_bytes(), 0o755)
    cpio.file("bin/workload", workload.read_bytes(), 0o755)
    cpio.file("init", (GUEST_SRC / "init").read_bytes(), 0o755)
    for m in mods:
        cpio.file(f"lib/modules/{m.name}", m.read_bytes())
    cpio.file("lib/modules/order", "\n".join(m.name.removesuffix(".ko") for m in mods).encode())
    image.initrd.write_bytes(gzip.compress(cpio.finish(), compresslevel=1))
    stamp.write_text(digest.hexdigest())
    return image
