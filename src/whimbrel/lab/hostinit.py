"""PID 1 of a lab host's private world: mounts, hostname, then its daemons.

Run as ``ip netns exec NS unshare --mount --uts --propagation private
python -m whimbrel.lab.hostinit PLAN.json``.  It bind-mounts the host's own
/run, /etc/libvirt, /var/{lib,log,cache}/libvirt and storage (bind mounts, not
overlays: a libvirtd restarted on an overlay could not reach the monitor
sockets of the VMs it left running), starts virtlockd and the storage heartbeat
service, then becomes libvirtd.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path


def mount(*args: str) -> None:
    subprocess.run(["mount", *args], check=True)


def private_dev(stash: str, hide: list[str]) -> None:
    """Give the host a /dev without the entries in ``hide`` (/dev/kvm on PVM machines).

    libvirt must not see /dev/kvm at all: a /dev/kvm that exists but does not
    work makes it distrust its cached QEMU capabilities and probe QEMU again on
    every call (seconds each).  The real /dev is kept at ``stash`` and every
    other entry is bind-mounted into a fresh tmpfs.
    """
    Path(stash).mkdir(parents=True, exist_ok=True)
    mount("--rbind", "/dev", stash)
    mount("-t", "tmpfs", "-o", "mode=0755,size=64k", "tmpfs", "/dev")
    for entry in sorted(os.listdir(stash)):
        if entry in hide or entry in ("pts", "ptmx"):
            continue
        src, dst = Path(stash) / entry, Path("/dev") / entry
        if src.is_symlink():
            dst.symlink_to(os.readlink(src))
        elif src.is_dir():
            dst.mkdir()
            mount("--rbind", str(src), str(dst))
        else:
            dst.touch()
            mount("--bind", str(src), str(dst))
    # A bind-mounted ptmx cannot find its devpts; the host gets its own instance.
    Path("/dev/pts").mkdir()
    mount("-t", "devpts", "-o", "newinstance,ptmxmode=0666,mode=0620", "devpts", "/dev/pts")
    Path("/dev/ptmx").symlink_to("pts/ptmx")


def main(plan_file: str) -> None:
    plan = json.loads(Path(plan_file).read_text())
    socket.sethostname(plan["hostname"])
    if plan.get("hide_dev"):
        private_dev(plan["dev_stash"], plan["hide_dev"])
    for m in plan["mounts"]:
        src, dst, kind = m["src"], m["dst"], m["kind"]
        if kind == "tmpfs":
            Path(dst).mkdir(parents=True, exist_ok=True)
            mount("-t", "tmpfs", "-o", "mode=0755,size=1m", "tmpfs", dst)
            continue
        target = Path(dst)
        if Path(src).is_dir():
            target.mkdir(parents=True, exist_ok=True)
        mount("--bind", src, dst)
        if kind == "ro":
            mount("-o", "remount,bind,ro", dst)
    for d in (
        "/run/libvirt",
        "/run/lock",
        "/var/lib/libvirt/qemu",
        "/var/log/libvirt/qemu",
        "/var/cache/libvirt/qemu",
    ):
        Path(d).mkdir(parents=True, exist_ok=True)
    lockd = subprocess.Popen(["virtlockd", "-f", "/etc/libvirt/virtlockd.conf"])
    Path(plan["virtlockd_pid"]).write_text(str(lockd.pid))
    deadline = time.monotonic() + 10
    while not Path("/run/libvirt/virtlockd-sock").exists():
        if time.monotonic() > deadline or lockd.poll() is not None:
            sys.exit("virtlockd did not start; see /var/log/libvirt/virtlockd.log")
        time.sleep(0.02)
    if plan.get("heartbeat"):
        log = open("/var/log/libvirt/heartbeat.log", "ab")  # noqa: SIM115 - the service's
        subprocess.Popen(
            [sys.executable, "-m", "whimbrel.ha.hostd", *plan["heartbeat"]],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
    sys.stdout.flush()
    os.execvp("libvirtd", ["libvirtd", "--listen", "-f", "/etc/libvirt/libvirtd.conf"])


if __name__ == "__main__":
    main(sys.argv[1])
