"""Bring the lab up, show it, tear it down, crash and revive its hosts."""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import libvirt

import whimbrel.drivers.libvirt  # noqa: F401  (keeps libvirt quiet on stderr)
from whimbrel.config import Settings
from whimbrel.errors import LabError
from whimbrel.lab import accel, netns, trust
from whimbrel.lab.assets import build_guest
from whimbrel.lab.hostconf import passwd_files, write_configs
from whimbrel.lab.provision import provision_host
from whimbrel.lab.topology import GUEST_DIR, LOCAL_DIR, PKI_DIR, LabHost, LabSpec, shared_dir
from whimbrel.pki import CertificateAuthority, write_client_bundle, write_host_bundle

Say = Callable[[str], None]
REQUIRED_TOOLS = ("ip", "unshare", "libvirtd", "virtlockd", "qemu-system-x86_64", "gcc", "busybox")


@dataclass(frozen=True)
class HostStatus:
    name: str
    cluster: str
    netns: str
    uri: str
    mgmt_ip: str
    migration_ip: str
    libvirtd_pid: int | None
    answering: bool
    domains: int


def _alive(pid: int | None) -> bool:
    """Whether the host's daemon (or its launcher, while it execs) still runs.

    A zombie counts as dead: a host killed by the process that launched it
    stays a zombie until that process reaps it.
    """
    if not pid:
        return False
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    comm, state = stat[stat.index("(") + 1 : stat.rindex(")")], stat[stat.rindex(")") + 2]
    return state != "Z" and comm in ("libvirtd", "python3", "python", "ip", "unshare", "nsenter")


class Lab:
    def __init__(self, spec: LabSpec, settings: Settings):
        self.spec = spec
        self.settings = settings
        self.state_file = spec.root / "lab.json"

    # -- bring up -------------------------------------------------------------

    def up(self, say: Say = print) -> list[HostStatus]:
        """Create whatever is missing; a second run changes nothing that works."""
        self._check_machine()
        fresh = not self.state_file.exists()
        acc = accel.detect()
        if fresh and not acc.kvm:
            say(f"note: {acc.reason}")
        t0 = time.monotonic()
        image = build_guest(self.settings.cache_dir, self.spec.guest_dir)
        say(
            f"guest kernel and initramfs ready in {self.spec.guest_dir} "
            f"({image.initrd.stat().st_size >> 10} KiB initramfs)"
        )
        ca = CertificateAuthority.load_or_create(self.settings.pki_dir / "ca")
        write_client_bundle(ca, self.settings.client_pki_dir)
        for cluster in self.spec.clusters:
            for sub in ("images", "leases"):
                (self.spec.cluster_dir(cluster) / "shared" / sub).mkdir(parents=True, exist_ok=True)
        netns.ensure_bridge(self.spec.bridge("mgmt"), f"{self.spec.gateway(0)}/24")
        netns.ensure_bridge(self.spec.bridge("mig"), f"{self.spec.gateway(1)}/24")
        for host in self.spec.hosts:
            self._host_up(host, ca, hide_kvm=not acc.kvm)
        for host in self.spec.hosts:
            self._wait_answering(host)
        with ThreadPoolExecutor(len(self.spec.hosts)) as pool:
            list(pool.map(provision_host, self.spec.hosts))
        self.state_file.write_text(
            json.dumps({"accel": "kvm" if acc.kvm else "tcg", "reason": acc.reason}, indent=2)
        )
        say(f"{len(self.spec.hosts)} hosts up in {time.monotonic() - t0:.1f} s")
        return self.status()

    def _check_machine(self) -> None:
        if os.geteuid() != 0:
            raise LabError(
                "E_LAB_NOT_ROOT",
                "the lab creates network namespaces and bridges, which needs root",
                "run 'whimbrel lab up' as root",
            )
        missing = [t for t in REQUIRED_TOOLS if shutil.which(t) is None]
        if missing:
            raise LabError(
                "E_LAB_TOOL_MISSING",
                "missing on this machine: " + ", ".join(missing),
                "run 'make deps' (it installs the Debian packages the lab needs)",
            )

    def _host_up(self, host: LabHost, ca: CertificateAuthority, hide_kvm: bool) -> None:
        d = host.dir
        for sub in ("etc", "run", "var-lib", "var-log", "var-cache", "local"):
            (d / sub).mkdir(parents=True, exist_ok=True)
        if not (d / "pki" / "servercert.pem").exists():
            names = (host.name, host.mgmt_ip, host.migration_ip)
            write_host_bundle(ca, d / "pki", host.name, names)
        write_configs(host, d / "etc")
        netns.ensure_netns(host.netns)
        netns.ensure_veth(
            host.veth("m"), self.spec.bridge("mgmt"), host.netns, "eth0", f"{host.mgmt_ip}/24"
        )
        netns.ensure_veth(
            host.veth("g"), self.spec.bridge("mig"), host.netns, "eth1", f"{host.migration_ip}/24"
        )
        netns.ensure_inner_bridge(host.netns, "br-vm")
        if _alive(self._pid(host)):
            return
        self._launch(host, hide_kvm)

    def _launch(self, host: LabHost, hide_kvm: bool) -> None:
        d = host.dir
        passwd, group = passwd_files(d)
        hosts_file = d / "hosts"
        hosts_file.write_text(
            "127.0.0.1 localhost\n" + "".join(f"{h.mgmt_ip} {h.name}\n" for h in self.spec.hosts)
        )
        mounts = [
            {"src": str(d / "run"), "dst": "/run", "kind": "rw"},
            {"src": str(d / "etc"), "dst": "/etc/libvirt", "kind": "rw"},
            {"src": str(d / "var-lib"), "dst": "/var/lib/libvirt", "kind": "rw"},
            {"src": str(d / "var-log"), "dst": "/var/log/libvirt", "kind": "rw"},
            {"src": str(d / "var-cache"), "dst": "/var/cache/libvirt", "kind": "rw"},
            {"src": str(passwd), "dst": "/etc/passwd", "kind": "ro"},
            {"src": str(group), "dst": "/etc/group", "kind": "ro"},
            {"src": str(hosts_file), "dst": "/etc/hosts", "kind": "ro"},
            # /srv/whimbrel is a fresh tmpfs per host: it sees its own local
            # storage and its own cluster's shared storage, nothing else.
            {"src": "", "dst": "/srv", "kind": "tmpfs"},
            {"src": str(d / "local"), "dst": LOCAL_DIR, "kind": "rw"},
            {"src": str(d / "pki"), "dst": PKI_DIR, "kind": "ro"},
            {"src": str(self.spec.guest_dir), "dst": GUEST_DIR, "kind": "ro"},
            {
                "src": str(self.spec.cluster_dir(host.cluster) / "shared"),
                "dst": shared_dir(host.cluster),
                "kind": "rw",
            },
        ]
        plan = d / "init.json"
        plan.write_text(
            json.dumps(
                {
                    "hostname": host.name,
                    "mounts": mounts,
                    "virtlockd_pid": str(d / "virtlockd.pid"),
                    "hide_dev": ["kvm"] if hide_kvm else [],
                    # the storage heartbeat service, beside libvirtd as on a real host
                    "heartbeat": [
                        "--host",
                        host.name,
                        "--storage",
                        shared_dir(host.cluster),
                        "--gateway",
                        self.spec.gateway(0),
                    ],
                    "dev_stash": str(d / "machine-dev"),
                },
                indent=2,
            )
        )
        for stale in ("run/libvirt/libvirt-sock", "run/libvirt/virtlockd-sock"):
            (d / stale).unlink(missing_ok=True)
        log = open(d / "init.log", "ab")  # noqa: SIM115 - handed to the daemon
        proc = subprocess.Popen(
            [
                "ip",
                "netns",
                "exec",
                host.netns,
                "unshare",
                "--mount",
                "--uts",
                "--propagation",
                "private",
                sys.executable,
                "-m",
                "whimbrel.lab.hostinit",
                str(plan),
            ],
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        (d / "libvirtd.pid").write_text(str(proc.pid))

    def _pid(self, host: LabHost) -> int | None:
        try:
            return int((host.dir / "libvirtd.pid").read_text())
        except (OSError, ValueError):
            return None

    def _wait_answering(self, host: LabHost, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._answering(host):
                return
            if not _alive(self._pid(host)):
                break
            time.sleep(0.05)
        log = (
            (host.dir / "init.log").read_text(errors="replace")[-2000:]
            if (host.dir / "init.log").exists()
            else ""
        )
        raise LabError(
            "E_LAB_HOST_DOWN",
            f"lab host {host.name} did not start libvirtd",
            "read the detail (the host's init log); "
            "'whimbrel lab down' then 'whimbrel lab up' starts afresh",
            log,
        )

    @staticmethod
    def _answering(host: LabHost) -> bool:
        if not host.socket.exists():
            return False
        try:
            conn = libvirt.open(host.local_uri)
        except libvirt.libvirtError:
            return False
        conn.close()
        return True

    # -- inspect --------------------------------------------------------------

    def status(self) -> list[HostStatus]:
        out = []
        for host in self.spec.hosts:
            answering = netns.netns_exists(host.netns) and self._answering(host)
            domains = 0
            if answering:
                conn = libvirt.open(host.local_uri)
                domains = len(conn.listAllDomains(0))
                conn.close()
            pid = self._pid(host)
            out.append(
                HostStatus(
                    host.name,
                    host.cluster,
                    host.netns,
                    host.uri,
                    host.mgmt_ip,
                    host.migration_ip,
                    pid if _alive(pid) else None,
                    answering,
                    domains,
                )
            )
        return out

    def accel(self) -> dict[str, str]:
        try:
            data: dict[str, str] = json.loads(self.state_file.read_text())
            return data
        except (OSError, ValueError):
            return {}

    def console_log(self, host: str, vm: str) -> Path:
        """The guest's serial console file, as the lab host wrote it."""
        return self.spec.host(host).dir / "var-log" / "qemu" / f"{vm}-console.log"

    # -- failures (for tests of recovery) -----------------------------------

    def kill_host(self, name: str) -> list[int]:
        """Pull the plug: SIGKILL every process of the host (libvirtd, virtlockd, QEMU)."""
        host = self.spec.host(name)
        pids = netns.netns_pids(host.netns)
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in pids:  # reap the ones this process launched itself
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        return pids

    def start_host(self, name: str) -> None:
        host = self.spec.host(name)
        if not _alive(self._pid(host)):
            self._launch(host, hide_kvm=not accel.detect().kvm)
        self._wait_answering(host)

    def isolate(self, name: str, cut: bool = True) -> None:
        """Cut (or mend) the host's management and migration links; its processes live on."""
        host = self.spec.host(name)
        for net in ("m", "g"):
            netns.ip("link", "set", host.veth(net), "down" if cut else "up")

    def fence_settings(self, name: str) -> dict[str, object]:
        """The lab's fence agent for ``name``: its power switch is its namespace."""
        return {"agent": "lab", "options": {"namespace": self.spec.host(name).netns}}

    def untrust(self, name: str) -> None:
        """Peer trust missing in one direction: no other host trusts ``name``
        as a migration source; it still accepts migrations from them."""
        host = self.spec.host(name)
        trust.untrust(host.dir / "pki", self.spec.root / "foreign-ca", host.name)

    def retrust(self, name: str) -> None:
        trust.retrust(self.spec.host(name).dir / "pki")

    def trusted(self, name: str) -> bool:
        return trust.trusted(self.spec.host(name).dir / "pki")

    # -- tear down ------------------------------------------------------------

    def down(self, say: Say = print) -> None:
        """Remove every namespace, bridge, process and file the lab made."""
        for host in self.spec.hosts:
            self._stop_processes(host)
            netns.delete_netns(host.netns)
            for net in ("m", "g"):
                netns.delete_link(host.veth(net))
        for net in ("mgmt", "mig"):
            netns.delete_link(self.spec.bridge(net))
        # the manager's own cut (lab/faults.py), if a test left it
        subnet = f"10.{self.spec.octet}.0.0/24"
        netns.ip("rule", "del", "prohibit", "to", subnet, "priority", "90", check=False)
        if self.spec.root.exists():
            shutil.rmtree(self.spec.root)
        say(f"lab {self.spec.name!r} removed")

    def _stop_processes(self, host: LabHost) -> None:
        if not netns.netns_exists(host.netns):
            return
        own = self._pid(host)
        for sig, wait in ((signal.SIGTERM, 3.0), (signal.SIGKILL, 3.0)):
            pids = netns.netns_pids(host.netns)
            if not pids:
                break
            for pid in pids:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, sig)
            deadline = time.monotonic() + wait
            while time.monotonic() < deadline and netns.netns_pids(host.netns):
                time.sleep(0.05)
        if own:  # reap the daemon if this very process launched it
            with contextlib.suppress(ChildProcessError):
                os.waitpid(own, os.WNOHANG)


def status_dicts(statuses: list[HostStatus]) -> list[dict[str, object]]:
    return [asdict(s) for s in statuses]
