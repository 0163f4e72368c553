"""Checks of a move between Hyper-V hosts, read live from both hosts and the directory.

Each check names the Microsoft topic it comes from (docs/hyper-v-mapping.md); the host facts
come from the driver's inventory scripts (Get-VMHost, Win32_DeviceGuard, Get-VM), the
delegation from Active Directory (:mod:`whimbrel.ad.delegation`), the VM's incompatibilities
from ``Compare-VM``.  A move inside one failover cluster is the cluster service's to
authenticate and route: the delegation and network checks are for moves between clusters or
standalone hosts.
"""

from __future__ import annotations

import ipaddress
from typing import cast

from whimbrel.ad import delegation
from whimbrel.domain.migration import MoveKind
from whimbrel.drivers import keeps_own_cluster
from whimbrel.drivers.hyperv.driver import HyperVHost
from whimbrel.drivers.hyperv.model import HvHost, HvVm, incompatibilities
from whimbrel.drivers.hyperv.transport import parse_uri
from whimbrel.drivers.hyperv.wire import win_path
from whimbrel.errors import WhimbrelError
from whimbrel.preflight.finding import Finding, HostDrivers, Severity
from whimbrel.preflight.vm import target_pool
from whimbrel.store.models import Host, Vm

E, W = Severity.ERROR, Severity.WARNING
WS2025 = (
    26100  # the first build whose workgroup clusters live-migrate (Hyper-V's workgroup clusters)
)
SWITCH_NOT_FOUND = 33012  # Compare-VM: "Could not find Ethernet switch"


def is_hyperv(h: Host) -> bool:
    return keeps_own_cluster(h.uri)


def check_move(
    vm: Vm, kind: MoveKind, src: Host, dst: Host, conns: HostDrivers, storage_path: str
) -> list[Finding]:
    if not (is_hyperv(src) and is_hyperv(dst)):
        return [
            Finding(
                "E_HYPERVISOR_MISMATCH",
                E,
                f"hosts {src.name} → {dst.name}",
                f"{src.name} runs {src.hypervisor or 'unknown'} and {dst.name} runs "
                f"{dst.hypervisor or 'unknown'}: a running VM cannot move between them",
                "move it to a host of the same hypervisor",
            )
        ]
    try:
        s_drv = cast(HyperVHost, conns.for_host(src.name))
        d_drv = cast(HyperVHost, conns.for_host(dst.name))
        s, d = s_drv.facts(max_age_s=0), d_drv.facts(max_age_s=0)
        hv = s_drv.vm(vm.name)
        c = s_drv.cluster()
    except WhimbrelError as exc:
        return [Finding(exc.code, E, f"VM {vm.name}", exc.cause, exc.fix, exc.detail)]
    inside = c is not None and d.name.lower() in {n.name.lower() for n in c.nodes}
    out = enabled(s, d, kind)
    out += version(hv, d)
    if inside and hv.clustered:
        out += cluster_session(s_drv, s.name, "Move-ClusterVirtualMachineRole")
        out += workgroup(s, d, s_drv) if not s.part_of_domain else []
        out += switches(hv, d)
        return out
    if kind in (MoveKind.LIVE, MoveKind.LIVE_STORAGE):
        out += network(s, d)
    if vm.ha and d_drv.cluster() is not None:
        out += cluster_session(d_drv, d.name, "Add-ClusterVirtualMachineRole")
    out += auth(s, d, s_drv, d_drv)
    if not any(f.severity == E for f in out):
        # --storage-path may name a pool: Compare-VM wants the directory it stands for.
        pool = target_pool(dst, storage_path) if storage_path else None
        out += compare(s_drv, hv, d, kind, pool.path if pool else storage_path)
    return out


def enabled(s: HvHost, d: HvHost, kind: MoveKind) -> list[Finding]:
    """Hyper-V's live migration without clustering: Enable-VMMigration on both hosts (storage
    moves need none)."""
    if kind == MoveKind.STORAGE:
        return []
    return [
        Finding(
            "E_MIGRATION_DISABLED",
            E,
            f"host {h.name}",
            f"live migration is disabled on the {role} host {h.name} "
            "(Get-VMHost: VirtualMachineMigrationEnabled is False)",
            f"run 'whimbrel host migration enable {h.name}' (Enable-VMMigration)",
        )
        for h, role in ((s, "source"), (d, "destination"))
        if not h.migration_enabled
    ]


def version(vm: HvVm, d: HvHost) -> list[Finding]:
    """Hyper-V's live migration without clustering: a VM runs only on hosts that support its
    configuration version."""
    if not d.supported_versions or vm.version in d.supported_versions:
        return []
    return [
        Finding(
            "E_CONFIG_VERSION_UNSUPPORTED",
            E,
            f"VM {vm.name}",
            f"VM {vm.name} has configuration version {vm.version}; host {d.name} (build "
            f"{d.os_build}) supports {', '.join(d.supported_versions)}",
            "move it to a host of the same or a newer Windows Server; a version cannot be "
            "lowered (Update-VMVersion only raises it, with the VM off)",
        )
    ]


def switches(vm: HvVm, d: HvHost) -> list[Finding]:
    have = {sw.name for sw in d.switches}
    return [_switch_missing(vm.name, sw, d.name) for sw in vm.switches if sw not in have]


def _switch_missing(vm: str, switch: str, host: str) -> Finding:
    """The virtual switch must exist on the destination, same name."""
    return Finding(
        "E_NETWORK_MISSING",
        E,
        f"VM {vm}",
        f"VM {vm} is connected to virtual switch {switch!r}, which host {host} does not have",
        f"create switch {switch!r} on {host} (New-VMSwitch, the same name on every host)",
    )


def network(s: HvHost, d: HvHost) -> list[Finding]:
    """Hyper-V's live migration without clustering: without "use any network", the destination
    listens only on its migration networks, and the source must have an address on one of
    them."""
    if d.use_any_network:
        return []
    nets = [ipaddress.ip_network(n, strict=False) for n in d.migration_subnets]
    src_ips = [ipaddress.ip_interface(a).ip for a in s.addresses]
    if any(ip in n for n in nets for ip in src_ips):
        return []
    return [
        Finding(
            "E_NO_MIGRATION_NETWORK",
            E,
            f"hosts {s.name} → {d.name}",
            f"{d.name} takes migrations only on {', '.join(d.migration_subnets) or 'no network'}"
            f", and {s.name} has no address there ({', '.join(s.addresses) or 'none'})",
            f"add a network both hosts are on ('whimbrel host migration set {d.name} --network "
            "CIDR', Add-VMMigrationNetwork) or allow any network",
        )
    ]


def auth(s: HvHost, d: HvHost, s_drv: HyperVHost, d_drv: HyperVHost) -> list[Finding]:
    """Hyper-V's live migration without clustering and Hyper-V's remote live migration with
    delegation: who authenticates the move, and what each choice needs."""
    subject = f"hosts {s.name} → {d.name}"
    if s.auth != d.auth:
        return [
            Finding(
                "E_MIGRATION_AUTH_MISMATCH",
                E,
                subject,
                f"{s.name} authenticates migrations with {s.auth}, {d.name} with {d.auth}",
                "choose the same on both ('whimbrel host migration set HOST --auth peer' for "
                "Kerberos, the one that works when Whimbrel starts the move)",
            )
        ]
    if s.auth == "CredSSP":
        return credssp(s, d, s_drv, d_drv)
    out = []
    for h in (s, d):
        if not h.part_of_domain:
            out.append(
                Finding(
                    "E_KERBEROS_NOT_IN_DOMAIN",
                    E,
                    f"host {h.name}",
                    f"Kerberos is chosen but {h.name} is not joined to a domain",
                    "join both hosts to the domain, or put them in a workgroup cluster "
                    "(Windows Server 2025) and move the VM inside it",
                )
            )
    if out:
        return out
    directory = s_drv.directory
    if directory is None:
        return [
            Finding(
                "W_DELEGATION_UNCHECKED",
                W,
                subject,
                "Kerberos is chosen but Whimbrel has no directory to read the hosts' "
                "constrained delegation from; a missing one fails the move with 0x8009030E",
                "set WHIMBREL_AD_URL, WHIMBREL_AD_USER, WHIMBREL_AD_PASSWORD_FILE and "
                "WHIMBREL_AD_CA for the manager",
            )
        ]
    # Both directions: the move needs source → destination, its undo the other way.
    found = delegation.check(directory, s.name, d.name)
    found += [f for f in delegation.check(directory, d.name, s.name) if f not in found]
    return found


def credssp(s: HvHost, d: HvHost, s_drv: HyperVHost, d_drv: HyperVHost) -> list[Finding]:
    out = []
    if parse_uri(s_drv.uri).auth != "credssp":
        out.append(
            Finding(
                "E_CREDSSP_NOT_SIGNED_IN",
                E,
                f"hosts {s.name} → {d.name}",
                "CredSSP is chosen, and Whimbrel starts the move remotely without delegating "
                "credentials to the source: it fails at the source with 0x8009030E ("
                "'no credentials are available in the security package')",
                "use Kerberos with constrained delegation ('whimbrel host migration set HOST "
                "--auth peer' on both, then 'whimbrel hyperv delegation grant SRC DST'), or "
                "connect to the source with auth=credssp, or start the move on the source",
            )
        )
    for h, drv, sev in ((s, s_drv, E), (d, d_drv, W)):
        try:
            guarded = drv.security().credential_guard
        except WhimbrelError:
            continue
        if guarded:
            role = "source" if sev == E else "destination (a move back from it would fail)"
            out.append(
                Finding(
                    "E_CREDENTIAL_GUARD_CREDSSP" if sev == E else "W_CREDENTIAL_GUARD_CREDSSP",
                    sev,
                    f"host {h.name}",
                    f"Credential Guard runs on the {role} host {h.name} (Windows Server 2025 "
                    "turns it on by default) and blocks CredSSP-based live migration",
                    "use Kerberos with constrained delegation instead of CredSSP; turning "
                    "Credential Guard off is possible but weakens the host",
                )
            )
    return out


def cluster_session(drv: HyperVHost, host: str, cmdlet: str) -> list[Finding]:
    """The cmdlet's own page: it "cannot be run remotely without CredSSP authentication on
    the server computer".  Whimbrel's session runs it on the node; in WinRM's default
    session with Kerberos or NTLM that is a remote run."""
    conn = parse_uri(drv.uri)
    if conn.runs_on_host:
        return []
    return [
        Finding(
            "E_CLUSTER_CMDLET_REMOTE",
            E,
            f"host {host}",
            f"{cmdlet} cannot run in a remote session without CredSSP, and Whimbrel "
            f"reaches {host} with {conn.auth} in WinRM's default session",
            "register a session configuration on every node (Register-PSSessionConfiguration "
            "-Name Whimbrel -RunAsVirtualAccount) and add configuration=Whimbrel to the hosts' "
            "URIs (remove and add the host again), or connect with auth=credssp",
        )
    ]


def workgroup(s: HvHost, d: HvHost, s_drv: HyperVHost) -> list[Finding]:
    """Hyper-V's workgroup clusters: a workgroup cluster moves VMs live only from Windows
    Server 2025 on, and authenticates with one local account, same name and password, on every
    node."""
    out = [
        Finding(
            "E_WORKGROUP_LIVE_MIGRATION_UNSUPPORTED",
            E,
            f"host {h.name}",
            f"{h.name} runs build {h.os_build}; live migration in a workgroup cluster needs "
            "Windows Server 2025 (build 26100) on every node",
            "upgrade the node, or move the VM quick (--quick) or offline",
        )
        for h in (s, d)
        if h.os_build < WS2025
    ]
    user = parse_uri(s_drv.uri).user.replace("/", "\\").rsplit("\\", 1)[-1]
    for h in (s, d):
        if user and user.lower() not in {a.lower() for a in h.local_accounts}:
            out.append(
                Finding(
                    "E_WORKGROUP_ACCOUNT_MISSING",
                    E,
                    f"host {h.name}",
                    f"the local account {user!r} Whimbrel uses does not exist (or is "
                    f"disabled) on {h.name}; a workgroup cluster needs the same local account "
                    "on every node",
                    f"create {user!r} on {h.name} with the same password as on the other "
                    "nodes (New-LocalUser), in its Administrators group",
                )
            )
    return out


def compare(
    s_drv: HyperVHost, vm: HvVm, d: HvHost, kind: MoveKind, storage_path: str
) -> list[Finding]:
    """Compare-VM's report, each incompatibility a finding; its own failures too."""
    storage = kind in (MoveKind.LIVE_STORAGE, MoveKind.STORAGE)
    try:
        report = s_drv.call(
            "vm_compare",
            Name=vm.name,
            DestinationHost=d.fqdn,
            IncludeStorage=storage,
            DestinationStoragePath=win_path(storage_path) if storage else "",
        )
    except WhimbrelError as exc:
        return [Finding(exc.code, E, f"VM {vm.name}", exc.cause, exc.fix, exc.detail)]
    out = []
    for x in incompatibilities(report or {}):
        if x.message_id == SWITCH_NOT_FOUND:
            name = x.message.split("'")[1] if x.message.count("'") >= 2 else x.message
            out.append(_switch_missing(vm.name, name, d.name))
        else:
            out.append(
                Finding(
                    "E_HYPERV_INCOMPATIBLE",
                    E,
                    f"VM {vm.name}",
                    f"Compare-VM: {x.message} (message {x.message_id})",
                    "fix what Hyper-V names, then check again",
                )
            )
    return out
