"""Bridges, network namespaces and veth pairs, through iproute2."""

from __future__ import annotations

import subprocess

from whimbrel.errors import LabError


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
    try:
        proc = subprocess.run(["ip", *args], capture_output=True, text=True)
    except FileNotFoundError as exc:
        raise LabError(
            "E_LAB_TOOL_MISSING", "ip is not installed", "apt-get install iproute2"
        ) from exc
    if check and proc.returncode != 0:
        raise LabError(
            "E_LAB_NETWORK",
            f"'ip {' '.join(args)}' failed",
            "the lab needs root and iproute2; run 'whimbrel lab down' and try again",
            proc.stderr.strip(),
        )
    return proc


def link_exists(name: str, netns: str | None = None) -> bool:
    pre = ["-n", netns] if netns else []
    return ip(*pre, "link", "show", name, check=False).returncode == 0


def netns_exists(name: str) -> bool:
    return name in netns_list()


def netns_list() -> list[str]:
    out = ip("netns", "list", check=False).stdout
    return [line.split()[0] for line in out.splitlines() if line.strip()]


def netns_pids(name: str) -> list[int]:
    out = ip("netns", "pids", name, check=False).stdout
    return [int(p) for p in out.split()]


def ensure_bridge(name: str, cidr: str) -> None:
    if not link_exists(name):
        ip("link", "add", name, "type", "bridge")
        ip("addr", "add", cidr, "dev", name)
    ip("link", "set", name, "up")


def ensure_netns(name: str) -> None:
    if not netns_exists(name):
        ip("netns", "add", name)
    ip("-n", name, "link", "set", "lo", "up")


def ensure_veth(outer: str, bridge: str, netns: str, inner: str, cidr: str) -> None:
    """A veth pair: ``outer`` on the machine's bridge (or on its own when ``bridge``
    is empty), ``inner`` inside ``netns``."""
    if not link_exists(inner, netns):
        if link_exists(outer):
            ip("link", "del", outer)
        ip("link", "add", outer, "type", "veth", "peer", "name", inner, "netns", netns)
        ip("-n", netns, "addr", "add", cidr, "dev", inner)
    if bridge:
        ip("link", "set", outer, "master", bridge, "up")
    else:
        ip("link", "set", outer, "up")
    ip("-n", netns, "link", "set", inner, "up")


def ensure_inner_bridge(netns: str, name: str) -> None:
    """A bridge inside the host for its VMs' NICs (Hyper-V's virtual switch)."""
    if not link_exists(name, netns):
        ip("-n", netns, "link", "add", name, "type", "bridge")
    ip("-n", netns, "link", "set", name, "up")


def delete_link(name: str) -> None:
    if link_exists(name):
        ip("link", "del", name, check=False)


def delete_netns(name: str) -> None:
    if netns_exists(name):
        ip("netns", "del", name, check=False)
