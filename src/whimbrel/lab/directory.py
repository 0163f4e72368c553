"""A real Active Directory for the lab: a Samba AD domain controller in its own namespace.

It holds the computer accounts of the Hyper-V host names (HV01..HV04 by
default), each with the SPNs Hyper-V registers, so that Whimbrel's delegation
check and ``hyperv delegation grant`` run against a real directory over LDAPS.
Its TLS certificate comes from the Whimbrel CA; the manager trusts that CA.

Layout (``root``): ``dc/`` Samba's provisioned tree (its own smb.conf), ``ca/``
the CA, ``admin.pw`` the administrator's password, ``samba.pid``.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from whimbrel.ad.delegation import MIGRATION_SERVICE
from whimbrel.ad.directory import LdapConfig, LdapDirectory
from whimbrel.errors import LabError
from whimbrel.lab import netns
from whimbrel.pki import CertificateAuthority, write_pem


@dataclass(frozen=True)
class DcSpec:
    root: Path = Path("/var/tmp/whimbrel-ad")
    octet: int = 82
    realm: str = "CORP.WHIMBREL.TEST"
    workgroup: str = "CORP"
    computers: tuple[str, ...] = ("HV01", "HV02", "HV03", "HV04")

    @property
    def netns(self) -> str:
        return f"wbad{self.octet}"

    @property
    def ip(self) -> str:
        return f"10.{self.octet}.0.2"

    @property
    def gateway(self) -> str:
        return f"10.{self.octet}.0.1"

    @property
    def fqdn(self) -> str:
        return f"dc01.{self.realm.lower()}"

    @property
    def base(self) -> str:
        return ",".join(f"DC={p}" for p in self.realm.lower().split("."))

    def dns_name(self, computer: str) -> str:
        return f"{computer.lower()}.{self.realm.lower()}"


def from_env() -> DcSpec:
    """``WHIMBREL_AD_LAB_OCTET`` keeps a second directory (the tests') apart."""
    octet = int(os.environ.get("WHIMBREL_AD_LAB_OCTET", "82"))
    return DcSpec(root=Path(f"/var/tmp/whimbrel-ad-{octet}"), octet=octet)


class SambaDc:
    def __init__(self, spec: DcSpec):
        self.spec = spec
        self.dc = spec.root / "dc"
        self.conf = self.dc / "etc" / "smb.conf"
        self.password_file = spec.root / "admin.pw"
        self.ca_file = spec.root / "ca" / "cacert.pem"
        self.pid_file = spec.root / "samba.pid"

    def config(self) -> LdapConfig:
        return LdapConfig(
            url=f"ldaps://{self.spec.ip}",
            user=f"Administrator@{self.spec.realm.lower()}",
            password_file=str(self.password_file),
            ca=str(self.ca_file),
            base=self.spec.base,
        )

    def directory(self) -> LdapDirectory:
        return LdapDirectory(self.config())

    def env(self) -> dict[str, str]:
        """The manager's settings for this directory (WHIMBREL_AD_*)."""
        c = self.config()
        return {"WHIMBREL_AD_URL": c.url, "WHIMBREL_AD_USER": c.user,
                "WHIMBREL_AD_PASSWORD_FILE": c.password_file, "WHIMBREL_AD_CA": c.ca}  # fmt: skip

    # -- up and down ------------------------------------------------------------

    def up(self) -> None:
        """Provision (once), start, and create the computer accounts; safe to repeat."""
        for tool in ("samba", "samba-tool"):
            if shutil.which(tool) is None:
                raise LabError(
                    "E_LAB_TOOL_MISSING",
                    f"{tool} is not installed",
                    "apt-get install samba samba-ad-provision samba-dsdb-modules winbind",
                )
        s = self.spec
        netns.ensure_netns(s.netns)
        netns.ensure_veth(f"wbad{s.octet}o", "", s.netns, "eth0", f"{s.ip}/24")
        netns.ip("addr", "replace", f"{s.gateway}/24", "dev", f"wbad{s.octet}o")
        if not self.conf.exists():
            self._provision()
        if not self._running():
            self._start()
        self._wait_ldaps()
        for name in s.computers:
            self._computer(name)

    def _run(self, *cmd: str, stdin: str = "") -> str:
        """``cmd`` inside the domain controller's namespace."""
        full = ["ip", "netns", "exec", self.spec.netns, *cmd]
        p = subprocess.run(full, input=stdin, capture_output=True, text=True)
        if p.returncode != 0:
            raise LabError(
                "E_LAB_DIRECTORY",
                f"'{' '.join(cmd[:3])} ...' failed for the lab's domain controller",
                "run 'whimbrel lab directory down' and try again",
                (p.stderr or p.stdout)[-2000:],
            )
        return p.stdout

    def _provision(self) -> None:
        s = self.spec
        if self.dc.exists():
            shutil.rmtree(self.dc)
        self.dc.mkdir(parents=True)
        password = "Wb-" + secrets.token_urlsafe(12) + "-1a"
        write_pem(self.password_file, password.encode(), private=True)
        ca = CertificateAuthority.load_or_create(s.root / "ca", "Whimbrel lab directory CA")
        leaf = ca.issue(s.fqdn, server=True, client=False, names=(s.fqdn, s.ip))
        tls = self.dc / "tls"
        write_pem(tls / "cert.pem", leaf.cert_pem)
        write_pem(tls / "key.pem", leaf.key_pem, private=True)
        opts = {
            "server services": "ldap, kdc",
            "tls enabled": "yes",
            "tls certfile": str(tls / "cert.pem"),
            "tls keyfile": str(tls / "key.pem"),
            "tls cafile": str(self.ca_file),
            "log file": str(s.root / "samba.log"),
            "interfaces": f"lo {s.ip}",
            "bind interfaces only": "yes",
        }
        self._run(
            "samba-tool", "domain", "provision", f"--targetdir={self.dc}",
            f"--realm={s.realm}", f"--domain={s.workgroup}", "--server-role=dc",
            "--dns-backend=NONE", f"--adminpass={password}", "--host-name=dc01",
            f"--host-ip={s.ip}", *(f"--option={k}={v}" for k, v in opts.items()),
        )  # fmt: skip

    def _running(self) -> bool:
        try:
            pid = int(self.pid_file.read_text())
        except (OSError, ValueError):
            return False
        return Path(f"/proc/{pid}").exists() and pid in netns.netns_pids(self.spec.netns)

    def _start(self) -> None:
        log = open(self.spec.root / "samba.out", "ab")  # noqa: SIM115 - the daemon keeps it
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.spec.netns, "samba", "-s", str(self.conf),
             "--foreground", "--no-process-group", "-M", "single"],
            stdout=log, stderr=log, start_new_session=True,
        )  # fmt: skip
        self.pid_file.write_text(str(proc.pid))

    def _wait_ldaps(self, timeout: float = 60.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                socket.create_connection((self.spec.ip, 636), timeout=1).close()
                return
            except OSError:
                time.sleep(0.3)
        raise LabError(
            "E_LAB_DIRECTORY",
            f"the lab's domain controller does not answer on {self.spec.ip}:636",
            f"see {self.spec.root / 'samba.log'}; run 'whimbrel lab directory down' and retry",
        )

    def _computer(self, name: str) -> None:
        """The account Hyper-V's domain join would make: NAME$, its DNS name, its SPNs."""
        d = self.spec.dns_name(name)
        spns = [f"{MIGRATION_SERVICE}/{name}", f"{MIGRATION_SERVICE}/{d}"]
        have = self._run("samba-tool", "computer", "list", "-s", str(self.conf))
        if f"{name}$" not in have.split():
            self._run("samba-tool", "computer", "create", name, "-s", str(self.conf),
                      *(f"--service-principal-name={p}" for p in spns))  # fmt: skip
            self.directory().set_attribute(name, "dNSHostName", d)

    def user(self, name: str, password: str) -> None:
        """A person's account (a Whimbrel user of realm 'ldap' logs in with it); made once."""
        have = self._run("samba-tool", "user", "list", "-s", str(self.conf))
        if name not in have.split():
            # The password goes on stdin's prompt, not on the command line.
            self._run("samba-tool", "user", "create", name, "-s", str(self.conf),
                      stdin=f"{password}\n{password}\n")  # fmt: skip

    def down(self) -> None:
        s = self.spec
        for pid in netns.netns_pids(s.netns):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + 10
        while netns.netns_pids(s.netns) and time.monotonic() < deadline:
            time.sleep(0.2)
        for pid in netns.netns_pids(s.netns):
            os.kill(pid, signal.SIGKILL)
        netns.delete_link(f"wbad{s.octet}o")
        netns.delete_netns(s.netns)
        if s.root.exists():
            shutil.rmtree(s.root)
