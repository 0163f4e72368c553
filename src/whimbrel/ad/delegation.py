"""Kerberos constrained delegation between two Hyper-V hosts: check and grant.

The procedure of Hyper-V's remote live migration with delegation, in "Active Directory Users
and Computers", for each of the two servers: (1) open the console, (2) select the server, (3)
open its properties, (4) the Delegation tab, (5) "trust this computer for delegation to
specified services only", (6) the protocol choice, (7) Add, (8) "Users or Computers", (9)
object type Computer and the partner's name, (10) select "cifs" and "Microsoft Virtual System
Migration Service", (11) OK — then the same on the partner.  :func:`grant` does steps 5, 6 and
10 through LDAP for both directions; the rest is the console's way of finding the objects.

Step 6: that procedure chooses "use Kerberos only".  That works for a move started
on the source itself, but a move started remotely (over WinRM, as Whimbrel
does) fails with 0x8009030E since Windows Server 2016: WinRM cannot pass on
the caller's ticket, so the source needs protocol transition ("use any
authentication protocol").  :func:`grant` sets it unless told otherwise.
"""

from __future__ import annotations

from dataclasses import dataclass

from whimbrel.ad.directory import (
    TRUSTED_FOR_DELEGATION,
    TRUSTED_TO_AUTH_FOR_DELEGATION,
    Computer,
    Directory,
)
from whimbrel.errors import WhimbrelError
from whimbrel.preflight.finding import Finding, Severity

MIGRATION_SERVICE = "Microsoft Virtual System Migration Service"
SERVICES = ("cifs", MIGRATION_SERVICE)
REPLICATION = (
    "a delegation just changed may need time to replicate to every domain controller, and "
    "the source needs new tickets: run 'klist purge -li 0x3e7' on it or wait about 15 minutes"
)


def needed(dst: Computer) -> list[str]:
    """What the source must be allowed to delegate to: both services, both names."""
    names = [dst.name]
    if dst.dns_name and dst.dns_name.lower() != dst.name.lower():
        names.append(dst.dns_name)
    return [f"{svc}/{n}" for svc in SERVICES for n in names]


def missing(src: Computer, dst: Computer) -> list[str]:
    have = {s.lower() for s in src.delegate_to}
    return [s for s in needed(dst) if s.lower() not in have]


def check(directory: Directory, source: str, dest: str) -> list[Finding]:
    """Findings for one direction of a Kerberos move, ``source`` → ``dest``."""
    try:
        src, dst = directory.computer(source), directory.computer(dest)
    except WhimbrelError as exc:
        return [Finding(exc.code, Severity.ERROR, f"hosts {source} → {dest}", exc.cause, exc.fix)]
    subject = f"hosts {src.name} → {dst.name}"
    out = []
    gap = missing(src, dst)
    if gap:
        out.append(
            Finding(
                "E_DELEGATION_MISSING",
                Severity.ERROR,
                subject,
                f"computer {src.name} may not delegate to {', '.join(gap)}; the move would "
                "fail at the source with 0x8009030E (no credentials are available)",
                f"run 'whimbrel hyperv delegation grant {src.name} {dst.name}' (both "
                f"directions); {REPLICATION}",
            )
        )
    if src.delegate_to and not src.any_protocol:
        out.append(
            Finding(
                "E_DELEGATION_KERBEROS_ONLY",
                Severity.ERROR,
                subject,
                f"computer {src.name} is set to 'use Kerberos only' (the delegation "
                "walkthrough's choice): a move started remotely, as Whimbrel starts it, fails "
                "with 0x8009030E",
                f"choose 'use any authentication protocol' on {src.name}'s Delegation tab, "
                f"or run 'whimbrel hyperv delegation grant {src.name} {dst.name}'; " + REPLICATION,
            )
        )
    if src.unconstrained:
        out.append(
            Finding(
                "W_DELEGATION_UNCONSTRAINED",
                Severity.WARNING,
                subject,
                f"computer {src.name} is trusted for unconstrained delegation, which "
                "Credential Guard blocks and which exposes every service",
                "trust it for delegation to specified services only "
                f"('whimbrel hyperv delegation grant {src.name} {dst.name}')",
            )
        )
    spn = f"{MIGRATION_SERVICE}/".lower()
    if not any(s.lower().startswith(spn) for s in dst.spns):
        out.append(
            Finding(
                "E_HYPERV_SPN_MISSING",
                Severity.ERROR,
                f"host {dst.name}",
                f"computer {dst.name} has no '{MIGRATION_SERVICE}' service principal name, "
                "so no host can delegate to it (0x80090303 at the source)",
                f'register it: setspn -s "{MIGRATION_SERVICE}/{dst.dns_name or dst.name}" '
                f"{dst.name} (Hyper-V registers it when the role is installed)",
            )
        )
    return out


@dataclass(frozen=True)
class Grant:
    source: str
    added: tuple[str, ...]
    any_protocol: bool
    unconstrained_removed: bool


def grant(directory: Directory, a: str, b: str, kerberos_only: bool = False) -> list[Grant]:
    """The delegation procedure for both directions; entries already there are kept."""
    out = []
    for src_name, dst_name in ((a, b), (b, a)):
        src, dst = directory.computer(src_name), directory.computer(dst_name)
        add = missing(src, dst)
        uac = src.uac & ~TRUSTED_FOR_DELEGATION
        uac = (
            uac & ~TRUSTED_TO_AUTH_FOR_DELEGATION
            if kerberos_only
            else uac | TRUSTED_TO_AUTH_FOR_DELEGATION
        )
        if add or uac != src.uac:
            directory.set_delegation(src.name, [*src.delegate_to, *add], uac)
        out.append(Grant(src.name, tuple(add), not kerberos_only, src.unconstrained))
    return out
