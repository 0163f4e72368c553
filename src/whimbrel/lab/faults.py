"""Faults the lab can cause on purpose, for the tests of the control plane: a hung
or restarted libvirtd, a host that loses its storage, a manager cut from every host.

(A host's death and its cut links are ``Lab.kill_host`` and ``Lab.isolate``.)
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from pathlib import Path

from whimbrel.errors import LabError
from whimbrel.ha.heartbeat import HEARTBEAT_DIR
from whimbrel.ha.hostd import guests
from whimbrel.lab import netns
from whimbrel.lab.lab import Lab, _alive
from whimbrel.lab.topology import shared_dir


def libvirtd_pid(lab: Lab, name: str) -> int:
    pid = lab._pid(lab.spec.host(name))
    if not _alive(pid):
        raise LabError(
            "E_LAB_HOST_DOWN",
            f"lab host {name} runs no libvirtd",
            f"'whimbrel lab start-host {name}'",
        )
    assert pid is not None
    return pid


def freeze_libvirtd(lab: Lab, name: str, frozen: bool = True) -> None:
    """SIGSTOP (or SIGCONT) the host's libvirtd: a hung daemon; its VMs run on."""
    os.kill(libvirtd_pid(lab, name), signal.SIGSTOP if frozen else signal.SIGCONT)


def _anchor(lab: Lab, name: str) -> int:
    """A process that lives in the host's private mount namespace (its virtlockd)."""
    host = lab.spec.host(name)
    try:
        pid = int((host.dir / "virtlockd.pid").read_text())
    except (OSError, ValueError) as exc:
        raise LabError(
            "E_LAB_HOST_DOWN",
            f"lab host {name} has no virtlockd",
            f"'whimbrel lab start-host {name}' (or 'whimbrel lab up')",
        ) from exc
    if not Path(f"/proc/{pid}").exists():
        raise LabError(
            "E_LAB_HOST_DOWN",
            f"lab host {name}'s virtlockd is gone: the host is down",
            f"'whimbrel lab start-host {name}'",
        )
    return pid


def restart_libvirtd(lab: Lab, name: str, down_s: float = 0.0) -> None:
    """Kill the host's libvirtd and start it again in the same host (its VMs run on)."""
    host = lab.spec.host(name)
    anchor = _anchor(lab, name)
    old = libvirtd_pid(lab, name)
    os.kill(old, signal.SIGKILL)
    with contextlib.suppress(ChildProcessError):
        os.waitpid(old, 0)
    deadline = time.monotonic() + 10
    while _alive(old) and time.monotonic() < deadline:
        time.sleep(0.05)
    time.sleep(down_s)
    (host.dir / "run/libvirt/libvirt-sock").unlink(missing_ok=True)
    log = open(host.dir / "init.log", "ab")  # noqa: SIM115 - handed to the daemon
    proc = subprocess.Popen(
        [
            "nsenter",
            "-t",
            str(anchor),
            "-m",
            "-u",
            "-n",
            "--",
            "libvirtd",
            "--listen",
            "-f",
            "/etc/libvirt/libvirtd.conf",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    (host.dir / "libvirtd.pid").write_text(str(proc.pid))
    lab._wait_answering(host)


def cut_storage(lab: Lab, name: str, cut: bool = True) -> None:
    """The host can no longer renew its storage heartbeat (or can again): its heartbeat
    directory becomes read-only for it, while its open disks still take writes, which
    is the case self-fencing exists for.  (The whole shared mount cannot be made
    read-only while QEMU holds disks open on it for writing.)"""
    hb = f"{shared_dir(lab.spec.host(name).cluster)}/{HEARTBEAT_DIR}"
    cmd = ["mount", "--bind", "-o", "ro", hb, hb] if cut else ["umount", hb]
    proc = subprocess.run(
        ["nsenter", "-t", str(_anchor(lab, name)), "-m", "--", *cmd],
        capture_output=True,
        text=True,
    )
    if proc.returncode != 0:
        raise LabError(
            "E_LAB_STORAGE",
            f"cannot {'cut' if cut else 'mend'} the heartbeat storage of {name}",
            "run 'whimbrel lab status'; 'whimbrel lab start-host' restores a host",
            proc.stderr.strip(),
        )


def cut_manager(lab: Lab, cut: bool = True) -> None:
    """Cut this machine (the manager) off the management network, or mend it: the
    manager loses every host while the hosts still reach each other.

    A policy rule refuses every packet this machine sends to the lab's management
    subnet.  The bridge keeps its address: without it the subnet's packets would
    follow the default route off the machine."""
    subnet = f"10.{lab.spec.octet}.0.0/24"
    rule = ["rule", "add" if cut else "del", "prohibit", "to", subnet, "priority", "90"]
    if cut and subnet in netns.ip("rule", "show").stdout:
        return  # already cut
    netns.ip(*rule, check=cut)


def heartbeat_log(lab: Lab, name: str) -> str:
    path = lab.spec.host(name).dir / "var-log" / "heartbeat.log"
    return path.read_text(errors="replace") if path.exists() else ""


def guest_pid(lab: Lab, name: str, vm: str) -> int | None:
    """The pid of VM's QEMU process on lab host ``name``, if it runs there."""
    pids = netns.netns_pids(lab.spec.host(name).netns)
    for pid in pids:
        try:
            ns = os.readlink(f"/proc/{pid}/ns/net")
        except OSError:
            continue
        return next((g.pid for g in guests(ns) if g.name == vm), None)
    return None
