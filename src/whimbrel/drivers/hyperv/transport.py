"""How scripts reach a Hyper-V host: PowerShell remoting (WinRM over HTTPS) with pypsrp.

The host URI carries the connection settings, never a secret::

    hyperv://hv01.corp.example[:5986]?auth=kerberos&ca=/etc/whimbrel/corp-ca.pem
    hyperv://hv01?auth=credssp&user=CORP\\admin&password_file=/root/.whimbrel/hv.pw
    hyperv://hv01?auth=certificate&cert=/path/client.pem&key=/path/client.key
    hyperv://hv01?auth=kerberos&configuration=Whimbrel

``configuration`` names a session configuration registered on the host
(``Register-PSSessionConfiguration -Name Whimbrel -RunAsVirtualAccount``): the
scripts then run as the host's own virtual account, which is how the cluster
cmdlets that "cannot be run remotely without CredSSP"
(``Move-ClusterVirtualMachineRole``, ``Add-ClusterVirtualMachineRole``) run
without handing the manager's credentials to the host.
``auth`` is negotiate, kerberos (the default; a ticket from ``kinit``),
credssp or certificate.  Each thread gets its own WinRM session, so a long
``Move-VMStorage`` and the job polls that report its progress run side by side.
"""

from __future__ import annotations

import contextlib
import json
import re
import threading
from dataclasses import dataclass
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from whimbrel.access.vault import read_secret
from whimbrel.drivers.hyperv.scripts import Script
from whimbrel.errors import HostUnreachable, HostUntrusted, HypervisorError, InvalidInput

AUTHS = ("negotiate", "kerberos", "credssp", "certificate")
_OPTIONS = {"auth", "user", "password_file", "ca", "cert", "key", "configuration"}
_CONFIGURATION = re.compile(r"[A-Za-z][A-Za-z0-9._-]{0,63}")


class Transport(Protocol):
    def run(self, script: Script, params: dict[str, Any]) -> dict[str, Any]:
        """Run ``script`` with ``params`` bound to its param() block; return its envelope."""
        ...

    def close(self) -> None: ...


@dataclass(frozen=True)
class Connection:
    host: str
    port: int
    auth: str
    user: str = ""
    password_file: str = ""
    ca: str = ""
    cert: str = ""
    key: str = ""
    configuration: str = ""  # a session configuration on the host; "" for the default

    @property
    def runs_on_host(self) -> bool:
        """Whether the cluster cmdlets can run in this session (CredSSP, or a session
        configuration that runs as an account of the host's own)."""
        return self.auth == "credssp" or bool(self.configuration)


def parse_uri(uri: str) -> Connection:
    u = urlsplit(uri)
    q = {k: v[-1] for k, v in parse_qs(u.query).items()}
    auth = q.get("auth", "kerberos")
    unknown = sorted(set(q) - _OPTIONS)
    if unknown:
        raise InvalidInput(
            "E_HOST_URI_OPTION_REFUSED",
            f"{uri!r} has options Whimbrel does not know: {', '.join(unknown)}",
            "use only " + ", ".join(sorted(_OPTIONS)),
        )
    if u.scheme != "hyperv" or not u.hostname or auth not in AUTHS:
        raise InvalidInput(
            "E_INVALID_HOST_URI",
            f"{uri!r} is not a Hyper-V host URI",
            "use hyperv://HOST?auth=kerberos|negotiate|credssp|certificate "
            "(WinRM over HTTPS on port 5986)",
        )
    if auth in ("negotiate", "credssp") and not (q.get("user") and q.get("password_file")):
        raise InvalidInput(
            "E_INVALID_HOST_URI",
            f"auth={auth} needs user= and password_file= in {uri!r}",
            "add user=DOMAIN\\name&password_file=/path/readable/by/root/only",
        )
    if auth == "certificate" and not (q.get("cert") and q.get("key")):
        raise InvalidInput(
            "E_INVALID_HOST_URI",
            f"auth=certificate needs cert= and key= in {uri!r}",
            "add cert=/path/client.pem&key=/path/client.key (mapped to a local account)",
        )
    configuration = q.get("configuration", "")
    if configuration and not _CONFIGURATION.fullmatch(configuration):
        raise InvalidInput(
            "E_INVALID_HOST_URI",
            f"configuration={configuration!r} is not a session configuration name",
            "give the name used with Register-PSSessionConfiguration -Name (letters, digits, "
            "'.', '_' and '-')",
        )
    return Connection(
        u.hostname,
        u.port or 5986,
        auth,
        q.get("user", ""),
        q.get("password_file", ""),
        q.get("ca", ""),
        q.get("cert", ""),
        q.get("key", ""),
        configuration,
    )


class PsrpTransport:
    def __init__(self, conn: Connection):
        self.conn = conn
        self._local = threading.local()
        self._pools: list[Any] = []
        self._lock = threading.Lock()

    def _pool(self) -> Any:
        pool = getattr(self._local, "pool", None)
        if pool is not None:
            return pool
        from pypsrp.powershell import RunspacePool
        from pypsrp.wsman import WSMan

        c = self.conn
        kw: dict[str, Any] = {"ssl": True, "port": c.port, "auth": c.auth}
        kw["cert_validation"] = c.ca or True
        if c.user:
            kw["username"] = c.user
            kw["password"] = read_secret(c.password_file)
        if c.auth == "certificate":
            kw["certificate_pem"], kw["certificate_key_pem"] = c.cert, c.key
        try:
            wsman = WSMan(c.host, operation_timeout=20, read_timeout=30, **kw)
            pool = RunspacePool(wsman, configuration_name=c.configuration or "Microsoft.PowerShell")
            pool.open()
        except Exception as exc:
            raise connect_error(c, exc) from exc
        self._local.pool = pool
        with self._lock:
            self._pools.append(pool)
        return pool

    def run(self, script: Script, params: dict[str, Any]) -> dict[str, Any]:
        from pypsrp.powershell import PowerShell

        pool = self._pool()
        ps = PowerShell(pool)
        ps.add_script(script.text)
        if params:
            ps.add_parameters(params)
        try:
            out = ps.invoke()
        except Exception as exc:
            self._local.pool = None  # a broken session is not reused
            raise connect_error(self.conn, exc) from exc
        return answer(
            script.name,
            self.conn.host,
            [str(o) for o in out],
            [str(e) for e in ps.streams.error],
            bool(ps.had_errors),
        )

    def close(self) -> None:
        with self._lock:
            pools, self._pools = self._pools, []
        for p in pools:
            with contextlib.suppress(Exception):  # closing a dead session is best effort
                p.close()


def answer(
    name: str, host: str, out: list[str], errors: list[str], had_errors: bool
) -> dict[str, Any]:
    """The envelope of one run, from what the pipeline gave: its output lines, its error
    stream (non-terminating errors land only there) and whether it failed outright."""
    text = "".join(out).strip()
    if had_errors or not text:
        raise HypervisorError(
            "E_HYPERV_SCRIPT",
            f"script {name} failed on {host} before it could answer",
            "check that the Hyper-V and FailoverClusters modules are installed on the host",
            "\n".join(errors),
        )
    try:
        env: dict[str, Any] = json.loads(text)
    except ValueError as exc:
        raise HypervisorError(
            "E_HYPERV_PROTOCOL",
            f"script {name} on {host} did not answer JSON",
            "check the host's PowerShell profile does not print anything",
            text[:500],
        ) from exc
    if errors and env.get("ok"):
        # Non-terminating errors: the script went on, but something failed.
        return {"ok": False, "error": {"message": "\n".join(errors)}}
    return env


def connect_error(c: Connection, exc: Exception) -> HostUnreachable | HostUntrusted:
    from pypsrp.exceptions import AuthenticationError

    if "session configuration" in str(exc):
        return HostUnreachable(
            "E_HYPERV_SESSION_CONFIGURATION",
            f"{c.host} has no session configuration {c.configuration!r}",
            f"register it on the host (Register-PSSessionConfiguration -Name {c.configuration} "
            "-RunAsVirtualAccount, run as an administrator), or remove configuration= from "
            "the host URI",
            str(exc),
        )
    if isinstance(exc, AuthenticationError) or "SSL" in type(exc).__name__:
        return HostUntrusted(
            "E_HYPERV_AUTH",
            f"{c.host} refused the WinRM login ({c.auth}) or its certificate",
            "check the account (a member of Hyper-V Administrators), the Kerberos ticket "
            "('klist'), and that the host's WinRM HTTPS certificate is signed by the CA given "
            "with ca=",
            str(exc),
        )
    return HostUnreachable(
        "E_HOST_UNREACHABLE",
        f"Hyper-V host {c.host} does not answer on WinRM HTTPS port {c.port}",
        "enable WinRM over HTTPS on the host (winrm quickconfig -transport:https) and open "
        f"TCP {c.port} in its firewall",
        str(exc),
    )
