"""Checks on the two hosts of a move: settings, networks, authentication.

Each check names the Microsoft topic it comes from (docs/hyper-v-mapping.md).
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from whimbrel.domain.migration import Auth
from whimbrel.errors import WhimbrelError
from whimbrel.preflight.finding import Finding, HostDrivers, Severity
from whimbrel.store.models import Host
from whimbrel.store.repo import migration_settings as settings_of

E, W = Severity.ERROR, Severity.WARNING


def check_enabled(src: Host, dst: Host) -> list[Finding]:
    """Hyper-V's live migration without clustering: "Enable incoming and outgoing live
    migrations" (Enable-VMMigration) must be on at both ends, for outgoing on the source and
    incoming on the destination."""
    out = []
    for h, role in ((src, "source"), (dst, "destination")):
        if not settings_of(h).enabled:
            out.append(
                Finding(
                    "E_MIGRATION_DISABLED",
                    E,
                    f"host {h.name}",
                    f"migration is disabled on the {role} host {h.name}",
                    f"run 'whimbrel host migration enable {h.name}'",
                )
            )
    return out


def check_maintenance(dst: Host) -> list[Finding]:
    """VMM's highly available VMs (maintenance mode): a host in maintenance takes no new VMs."""
    if not dst.maintenance:
        return []
    return [
        Finding(
            "E_DEST_IN_MAINTENANCE",
            E,
            f"host {dst.name}",
            f"the destination host {dst.name} is in maintenance mode and takes no VMs",
            "choose another host, or end maintenance with "
            f"'whimbrel host maintenance stop {dst.name}'",
        )
    ]


def _uri_ip(h: Host) -> str:
    return urlsplit(h.uri).hostname or ""


def pick_address(src: Host, dst: Host) -> str | None:
    """The destination address the migration stream goes to; "" for the
    destination's own default; None when no allowed network joins the hosts.

    Hyper-V's live migration without clustering, "network preference" and the incoming
    networks (Set-VMMigrationNetwork / "use any available network"): the destination
    accepts migrations only on its allowed networks, and the source must sit on the same
    network.  A dedicated network (not the management address) is preferred: the stream is
    unencrypted unless ``encrypt`` is on.
    """
    allowed = settings_of(dst)
    src_ips = [ipaddress.ip_interface(a).ip for a in src.addresses]
    usable = [
        str(iface.ip)
        for iface in map(ipaddress.ip_interface, dst.addresses)
        if allowed.allows(str(iface)) and any(ip in iface.network for ip in src_ips)
    ]
    dedicated = [a for a in usable if a != _uri_ip(dst)]
    if dedicated or usable:
        return (dedicated or usable)[0]
    if not allowed.networks:
        # "Any network" and no common address known: the destination's own
        # default (libvirt's migration_host), which may not be its management address.
        return ""
    return None


def check_network(src: Host, dst: Host) -> tuple[list[Finding], str | None]:
    addr = pick_address(src, dst)
    if addr is None:
        nets = ", ".join(settings_of(dst).networks) or "any"
        return [
            Finding(
                "E_NO_MIGRATION_NETWORK",
                E,
                f"hosts {src.name} → {dst.name}",
                f"{dst.name} accepts migrations only on {nets}, and none of its addresses "
                f"({', '.join(dst.addresses) or 'none declared'}) is on a network {src.name} "
                f"is on ({', '.join(src.addresses) or 'none declared'})",
                f"add a common network with 'whimbrel host migration set {dst.name} --network "
                "CIDR', or declare the hosts' addresses with 'whimbrel host migration set HOST "
                "--address IP/PREFIX'",
            )
        ], None
    out = []
    if not settings_of(src).encrypt and not settings_of(dst).networks:
        out.append(
            Finding(
                "W_MIGRATION_UNENCRYPTED",
                W,
                f"hosts {src.name} → {dst.name}",
                "the migration stream is not encrypted and may use any network "
                "(live migration traffic is not encrypted)",
                f"restrict it to a private network ('whimbrel host migration set {dst.name} "
                "--network CIDR') or turn on '--encrypt'",
            )
        )
    return out, addr


def check_auth(src: Host, dst: Host, conns: HostDrivers) -> list[Finding]:
    """Who authenticates the move (Hyper-V's live migration without clustering, Hyper-V's
    remote live migration with delegation).

    ``managed`` (CredSSP's place): the manager itself must log in to both
    hosts.  ``peer`` (Kerberos with constrained delegation): the source logs
    in to the destination with its own identity, which the destination must
    trust; a missing trust is the 0x8009030E case of a move started remotely, reported with
    its cause instead of "no credentials are available".
    """
    out = []
    for h in (src, dst):
        try:
            conns.for_host(h.name)
        except WhimbrelError as exc:
            out.append(_finding(exc, f"host {h.name}", E))
    if out or settings_of(src).auth != Auth.PEER:
        return out
    try:
        conns.for_host(src.name).check_peer_trust(dst.uri, settings_of(src).peer_pki)
    except WhimbrelError as exc:
        out.append(_finding(exc, f"hosts {src.name} → {dst.name}", E))
    return out


def _finding(exc: WhimbrelError, subject: str, sev: Severity) -> Finding:
    return Finding(exc.code, sev, subject, exc.cause, exc.fix, exc.detail)
