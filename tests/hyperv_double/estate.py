"""A transport double: an in-memory Hyper-V estate that answers the driver's scripts.

It stands where pypsrp would, so everything above the transport (driver,
preflight, jobs, flows) runs as it would against real hosts.  Each script is
answered by a handler of the same name that acts on the estate the way the
reference (research/hyperv.md) says Hyper-V and the cluster service do:
moves run as jobs that advance with time, and fail at the host with the
messages and HRESULTs Hyper-V uses (0x8009030E for missing delegation or a
CredSSP move started remotely, 0x8007274D for a destination with migration
off, ...).  ``ps51=True`` answers in Windows PowerShell 5.1's raw shapes.

For unit tests and demos only; nothing here proves a real host behaves so.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

from tests.hyperv_double import admin as double_admin
from tests.hyperv_double import inventory as double_inventory
from tests.hyperv_double import moves as double_moves
from tests.hyperv_double.ps51 import ps51
from whimbrel.ad.directory import MemoryDirectory
from whimbrel.drivers.hyperv.driver import HyperVHost
from whimbrel.drivers.hyperv.scripts import Script, script
from whimbrel.drivers.hyperv.transport import connect_error, parse_uri
from whimbrel.errors import HostUnreachable

GIB = 1 << 30
TWO_CLUSTERS = {"CL-ALPHA": ("HV01", "HV02"), "CL-BETA": ("HV03", "HV04")}


class HostError(Exception):
    """What a script throws on the host: the message, and its HRESULT if any."""

    def __init__(self, message: str, fqid: str = "", category: str = ""):
        super().__init__(message)
        self.fqid, self.category = fqid, category


@dataclass
class DVm:
    name: str
    id: str
    memory: int
    disks: list[str]
    switches: list[str]
    version: str = "10.0"
    state: str = "Off"
    cpus: int = 2
    compat: bool = False
    clustered: bool = False


@dataclass
class DHost:
    name: str
    domain: str  # "" for a workgroup node
    cluster: str = ""
    memory: int = 256 * GIB
    os_build: int = 20348
    cpu: str = "Intel(R) Xeon(R) Gold 6338 CPU @ 2.00GHz"
    vendor: str = "GenuineIntel"
    versions: list[str] = field(default_factory=lambda: ["8.0", "9.0", "9.1", "10.0"])
    switches: list[str] = field(default_factory=lambda: ["Prod"])
    addresses: list[str] = field(default_factory=list)
    vhd_path: str = "C:\\Hyper-V\\Virtual Hard Disks"
    enabled: bool = True
    max_live: int = 2
    max_storage: int = 2
    auth: str = "Kerberos"
    performance: str = "Compression"
    use_any: bool = False
    subnets: list[str] = field(default_factory=list)
    credential_guard: bool = False
    accounts: list[str] = field(default_factory=lambda: ["Administrator"])
    session: str = "kerberos"  # how the manager's WinRM session logs in
    session_config: str = ""  # the session configuration it asked for ("" for the default)
    uri_seen: str = ""
    # Registered with Register-PSSessionConfiguration -RunAsVirtualAccount on the node.
    configurations: set[str] = field(default_factory=lambda: {"Whimbrel"})
    node_state: str = "Up"
    drain: str = "NotInitiated"
    vms: dict[str, DVm] = field(default_factory=dict)

    @property
    def fqdn(self) -> str:
        return f"{self.name.lower()}.{self.domain}" if self.domain else self.name.lower()

    @property
    def os_version(self) -> str:
        return f"10.0.{self.os_build}"

    def free(self) -> int:
        used = sum(v.memory for v in self.vms.values() if v.state in ("Running", "Paused"))
        return self.memory - 8 * GIB - used


@dataclass
class DCluster:
    name: str
    volumes: list[str]  # CSV paths, C:\ClusterStorage\VolumeN
    max_parallel: int = 2
    groups: dict[str, int] = field(default_factory=dict)  # VM role → priority


@dataclass
class DJob:
    path: str
    vm_id: str
    host: str
    job_type: int
    migration_type: int
    started: float
    duration: float
    effect: Any  # called once the job ends well
    error: str = ""
    state: int = 4
    cancelled: bool = False
    ended: float = 0.0

    def percent(self) -> int:
        return max(0, min(100, int((time.monotonic() - self.started) / self.duration * 100)))


class HyperVEstate:
    def __init__(self, domain: str = "corp.example", ps51: bool = False):
        self.domain = domain
        self.ps51 = ps51
        self.hosts: dict[str, DHost] = {}
        self.clusters: dict[str, DCluster] = {}
        self.files: dict[tuple[str, str], int] = {}
        self.jobs: dict[str, DJob] = {}
        self.events: dict[str, list[tuple[float, str]]] = {}  # host → (time, VMMS message)
        self.directory = MemoryDirectory(domain)
        self.calls: list[tuple[str, str, dict[str, Any]]] = []
        self.fail: dict[str, str] = {}  # script name → message its next run throws
        self.down: set[str] = set()  # hosts that answer nothing
        self.job_s = 0.05  # how long a move's job runs
        # A finished job stays listed this long (TimeBeforeRemoval: 5 minutes), then goes.
        self.job_kept_s = 300.0
        # How long after Move-ClusterVirtualMachineRole -Wait 0 returns its job appears.
        self.cluster_lag_s = 0.0
        self.latency_s = 0.0  # added to every round trip, like a WAN's
        self.poll_s = 0.01  # how often drivers opened here look at a running move
        self.lock = threading.RLock()

    @classmethod
    def two_clusters(cls, domain: str = "corp.example", ps51: bool = False,
                     delegation: bool = True) -> HyperVEstate:  # fmt: skip
        """CL-ALPHA (HV01, HV02, C:\\ClusterStorage\\Volume1) and CL-BETA (HV03, HV04,
        Volume2): one domain, Kerberos, migration network 10.10.20.0/24, and (unless
        ``delegation`` is False) delegation granted between the clusters' nodes."""
        from whimbrel.ad.delegation import grant

        e = cls(domain=domain, ps51=ps51)
        for i, (cluster, nodes) in enumerate(TWO_CLUSTERS.items()):
            e.add_cluster(cluster, [f"C:\\ClusterStorage\\Volume{i + 1}"])
            for j, n in enumerate(nodes):
                ip = 10 * i + j + 1
                e.add_host(n, cluster=cluster, addresses=[f"10.10.10.{ip}/24", f"10.10.20.{ip}/24"],
                           subnets=["10.10.20.0/24"])  # fmt: skip
        for a in TWO_CLUSTERS["CL-ALPHA"]:
            for b in TWO_CLUSTERS["CL-BETA"] if delegation else ():
                grant(e.directory, a, b)
        return e

    # -- building ---------------------------------------------------------------

    def add_cluster(self, name: str, volumes: list[str], **kw: Any) -> DCluster:
        c = DCluster(name, volumes, **kw)
        self.clusters[name] = c
        return c

    def add_host(self, name: str, cluster: str = "", **kw: Any) -> DHost:
        kw.setdefault("domain", self.domain)
        h = DHost(name.upper(), cluster=cluster, **kw)
        self.hosts[h.name] = h
        if h.domain:
            from whimbrel.ad.delegation import MIGRATION_SERVICE

            spns = (
                f"HOST/{h.name}",
                f"HOST/{h.fqdn}",
                f"{MIGRATION_SERVICE}/{h.name}",
                f"{MIGRATION_SERVICE}/{h.fqdn}",
            )
            self.directory.add(h.name, spns)
        return h

    def add_vm(self, host: str, vm: DVm, size: int = 8 * GIB) -> DVm:
        h = self.hosts[host.upper()]
        h.vms[vm.name] = vm
        for d in vm.disks:
            self.files[self.key(h, d)] = size
        if vm.clustered and h.cluster:
            self.clusters[h.cluster].groups[vm.name] = 2000
        return vm

    def uri(
        self,
        host: str,
        auth: str = "kerberos",
        user: str = "admin",
        configuration: str = "Whimbrel",
    ) -> str:
        """The host's URI; by default through the session configuration every node has, where
        the cluster cmdlets run (``configuration=""`` for WinRM's default session)."""
        h = self.hosts[host.upper()]
        extra = f"&user={user}&password_file=/dev/null" if auth in ("credssp", "negotiate") else ""
        extra += f"&configuration={configuration}" if configuration else ""
        return f"hyperv://{h.fqdn}?auth={auth}{extra}"

    def open(self, uri: str) -> HyperVHost:
        c = parse_uri(uri)
        host = self.host_of(c.host)
        host.session, host.session_config, host.uri_seen = c.auth, c.configuration, uri
        drv = HyperVHost(uri, DoubleTransport(self, host.name), self.directory)
        drv.poll_s = self.poll_s
        return drv

    # -- looking up -------------------------------------------------------------------

    def host_of(self, name: str) -> DHost:
        short = name.split(".", 1)[0].upper()
        if short not in self.hosts:
            raise HostError(f"The host '{name}' could not be resolved (0x80072AF9).")
        return self.hosts[short]

    def where(self, vm: str) -> DHost | None:
        return next((h for h in self.hosts.values() if vm in h.vms), None)

    def key(self, h: DHost, path: str) -> tuple[str, str]:
        """Files on a cluster's shared volumes are the cluster's; the rest the host's."""
        p = path.lower()
        if h.cluster:
            for v in self.clusters[h.cluster].volumes:
                if p.startswith(v.lower() + "\\"):
                    return (h.cluster, p)
        return (h.name, p)

    def fail_node(self, name: str) -> None:
        """The node dies: it answers nothing, and its cluster restarts its running
        roles on the Up node with the most free memory, as the cluster service does."""
        with self.lock:
            h = self.hosts[name]
            self.down.add(h.name)
            h.node_state = "Down"
            c = self.clusters.get(h.cluster)
            up = [n for n in self.hosts.values() if n.cluster == h.cluster and n.node_state == "Up"]
            for vm in list(h.vms.values()):
                if c is not None and vm.name in c.groups and vm.state == "Running" and up:
                    dst = max(up, key=lambda n: n.free())
                    del h.vms[vm.name]
                    dst.vms[vm.name] = vm

    def tick(self) -> None:
        """End the jobs whose time is up: their effect, or their failure; forget the jobs
        that ended more than TimeBeforeRemoval ago."""
        now = time.monotonic()
        for path, j in list(self.jobs.items()):
            if j.state != 4 and now - j.ended > self.job_kept_s:
                del self.jobs[path]
                continue
            if j.state == 4 and (j.cancelled or j.percent() >= 100):
                if j.cancelled:
                    j.state, j.error = 9, "The operation was cancelled."
                elif j.error:
                    j.state = 10
                else:
                    j.effect()
                    j.state = 7
                j.ended = now


class DoubleTransport:
    def __init__(self, estate: HyperVEstate, host: str):
        self.estate = estate
        self.host = host

    def run(self, s: Script, params: dict[str, Any]) -> dict[str, Any]:
        if self.estate.latency_s:
            time.sleep(self.estate.latency_s)
        if script(s.name).text != s.text:
            raise AssertionError(f"script {s.name} is not the driver's own")
        unknown = set(params) - set(s.params)
        if unknown:
            raise AssertionError(f"script {s.name} has no parameter(s) {sorted(unknown)}")
        e = self.estate
        h = e.hosts[self.host]
        if h.session_config and h.session_config not in h.configurations:
            raise connect_error(
                parse_uri(h.uri_seen),
                Exception(
                    "The WS-Management service cannot process the request. Cannot find the "
                    f"{h.session_config} session configuration in the WSMan: drive on the "
                    f"{h.name} computer."
                ),
            )
        if self.host in e.down:
            raise HostUnreachable(
                "E_HOST_UNREACHABLE",
                f"Hyper-V host {self.host} does not answer on WinRM HTTPS port 5986",
                "check the host",
            )
        blocking = s.name in ("vm_move_storage",)
        with e.lock:
            e.calls.append((self.host, s.name, dict(params)))
            e.tick()
            h = e.hosts[self.host]
            try:
                if s.name in e.fail:
                    raise HostError(e.fail.pop(s.name))
                handler = next(
                    getattr(m, s.name)
                    for m in (double_inventory, double_moves, double_admin)
                    if hasattr(m, s.name)
                )
                data = handler(e, h, **params)
            except HostError as exc:
                error = {"message": str(exc), "fqid": exc.fqid, "category": exc.category}
                return {"ok": False, "error": error}
        if blocking:  # the cmdlet returns when its job has ended
            while True:
                time.sleep(e.job_s / 5)
                with e.lock:
                    e.tick()
                    j = e.jobs[str(data)]
                    if j.state != 4:
                        break
            if j.state != 7:
                return {"ok": False, "error": {"message": j.error}}
            data = {"Moved": [v["DestinationFilePath"] for v in params["Vhds"]]}
        return {"ok": True, "data": ps51(s.name, data) if e.ps51 else data}

    def close(self) -> None:
        pass
