"""Computer accounts in Active Directory, read and changed over LDAP (ldap3).

Read from Linux, not from a host session: a WinRM session on a Hyper-V host
cannot reach the directory with the caller's identity (the second hop).

The manager finds its directory in the environment::

    WHIMBREL_AD_URL=ldaps://dc01.corp.example   WHIMBREL_AD_USER=admin@corp.example
    WHIMBREL_AD_PASSWORD_FILE=/root/.whimbrel/ad.pw   WHIMBREL_AD_CA=/etc/whimbrel/corp-ca.pem
"""

from __future__ import annotations

import os
import ssl
import threading
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from whimbrel.access.vault import read_secret
from whimbrel.errors import HostUnreachable, HostUntrusted, NotFound, WrongState

TRUSTED_FOR_DELEGATION = 0x80000  # unconstrained: Credential Guard blocks it
TRUSTED_TO_AUTH_FOR_DELEGATION = 0x1000000  # "use any authentication protocol"


@dataclass(frozen=True)
class Computer:
    name: str  # the short name, sAMAccountName without its '$'
    dn: str
    dns_name: str
    spns: tuple[str, ...] = ()
    delegate_to: tuple[str, ...] = ()
    uac: int = 0x1000  # WORKSTATION_TRUST_ACCOUNT

    @property
    def any_protocol(self) -> bool:
        return bool(self.uac & TRUSTED_TO_AUTH_FOR_DELEGATION)

    @property
    def unconstrained(self) -> bool:
        return bool(self.uac & TRUSTED_FOR_DELEGATION)


class Directory(Protocol):
    def computer(self, name: str) -> Computer:
        """Raises: NotFound (E_AD_COMPUTER_NOT_FOUND), HostUnreachable, HostUntrusted."""
        ...

    def set_delegation(self, name: str, delegate_to: list[str], uac: int) -> None:
        """Replace the account's msDS-AllowedToDelegateTo and userAccountControl."""
        ...


def computer_not_found(name: str) -> NotFound:
    return NotFound(
        "E_AD_COMPUTER_NOT_FOUND",
        f"Active Directory has no computer account {name!r}",
        "check the host's name (its computer account is NAME$) and that it joined the domain",
    )


@dataclass
class MemoryDirectory:
    """A directory held in memory, for the transport double and unit tests."""

    domain: str
    computers: dict[str, Computer] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, name: str, spns: tuple[str, ...] = ()) -> Computer:
        dns = f"{name.lower()}.{self.domain}"
        c = Computer(name.upper(), f"CN={name.upper()},CN=Computers", dns, spns)
        with self.lock:
            self.computers[name.upper()] = c
        return c

    def computer(self, name: str) -> Computer:
        with self.lock:
            c = self.computers.get(name.split(".", 1)[0].upper())
        if c is None:
            raise computer_not_found(name)
        return c

    def set_delegation(self, name: str, delegate_to: list[str], uac: int) -> None:
        c = self.computer(name)
        with self.lock:
            self.computers[c.name] = replace(c, delegate_to=tuple(delegate_to), uac=uac)


@dataclass(frozen=True)
class LdapConfig:
    url: str
    user: str
    password_file: str
    ca: str = ""
    base: str = ""


class LdapDirectory:
    _ATTRS = ("sAMAccountName", "dNSHostName", "servicePrincipalName",
              "msDS-AllowedToDelegateTo", "userAccountControl")  # fmt: skip

    def __init__(self, cfg: LdapConfig):
        self.cfg = cfg
        self._base = cfg.base

    def _connect(self) -> Any:
        from ldap3 import Connection, Server, Tls
        from ldap3.core.exceptions import LDAPBindError, LDAPException

        tls = Tls(
            validate=ssl.CERT_REQUIRED,
            ca_certs_file=self.cfg.ca or None,
            version=ssl.PROTOCOL_TLS_CLIENT,
        )
        try:
            password = read_secret(self.cfg.password_file)
            server = Server(self.cfg.url, tls=tls, get_info="DSA", connect_timeout=5)
            conn = Connection(server, user=self.cfg.user, password=password, auto_bind=True)
        except LDAPBindError as exc:
            raise HostUntrusted(
                "E_AD_BIND",
                f"the directory at {self.cfg.url} refused the login of {self.cfg.user}",
                "check WHIMBREL_AD_USER and the password in WHIMBREL_AD_PASSWORD_FILE",
                str(exc),
            ) from exc
        except (LDAPException, OSError) as exc:
            if "certificate" in str(exc).lower():
                raise HostUntrusted(
                    "E_AD_CERTIFICATE",
                    f"the directory at {self.cfg.url} shows a certificate the CA in "
                    "WHIMBREL_AD_CA did not sign (or one for another name)",
                    "point WHIMBREL_AD_CA at the CA that signed the domain controller's LDAPS "
                    "certificate, and use the name or address the certificate carries",
                    str(exc),
                ) from exc
            raise HostUnreachable(
                "E_AD_UNREACHABLE",
                f"the directory at {self.cfg.url} does not answer over LDAPS",
                "check WHIMBREL_AD_URL (ldaps://DC), that TCP 636 is open, and that the DC's "
                "certificate is signed by the CA in WHIMBREL_AD_CA",
                str(exc),
            ) from exc
        if not self._base:
            ctx = server.info.other.get("defaultNamingContext") if server.info else None
            self._base = str(ctx[0]) if ctx else ""
        return conn

    def _entry(self, conn: Any, name: str) -> Any:
        from ldap3 import SUBTREE
        from ldap3.utils.conv import escape_filter_chars

        short = escape_filter_chars(name.split(".", 1)[0])
        flt = f"(&(objectClass=computer)(sAMAccountName={short}$))"
        conn.search(self._base, flt, SUBTREE, attributes=list(self._ATTRS))
        if not conn.entries:
            raise computer_not_found(name)
        return conn.entries[0]

    def computer(self, name: str) -> Computer:
        conn = self._connect()
        try:
            e = self._entry(conn, name)
            attrs = e.entry_attributes_as_dict
            return Computer(
                name=str(attrs["sAMAccountName"][0]).rstrip("$"),
                dn=e.entry_dn,
                dns_name=str((attrs.get("dNSHostName") or [""])[0]),
                spns=tuple(str(s) for s in attrs.get("servicePrincipalName", [])),
                delegate_to=tuple(str(s) for s in attrs.get("msDS-AllowedToDelegateTo", [])),
                uac=int(attrs["userAccountControl"][0]),
            )
        finally:
            conn.unbind()

    def set_delegation(self, name: str, delegate_to: list[str], uac: int) -> None:
        from ldap3 import MODIFY_REPLACE

        self._modify(
            name,
            {
                "msDS-AllowedToDelegateTo": [(MODIFY_REPLACE, delegate_to)],
                "userAccountControl": [(MODIFY_REPLACE, [str(uac)])],
            },
        )

    def set_attribute(self, name: str, attribute: str, value: str) -> None:
        from ldap3 import MODIFY_REPLACE

        self._modify(name, {attribute: [(MODIFY_REPLACE, [value])]})

    def _modify(self, name: str, changes: dict[str, Any]) -> None:
        conn = self._connect()
        try:
            dn = self._entry(conn, name).entry_dn
            if not conn.modify(dn, changes):
                raise WrongState(
                    "E_AD_MODIFY",
                    f"the directory refused to change computer {name}: "
                    f"{conn.result.get('description')}",
                    "use an account allowed to enable delegation (Domain Admins, or one "
                    "holding SeEnableDelegationPrivilege)",
                    str(conn.result),
                )
        finally:
            conn.unbind()


def config_from_env() -> LdapConfig:
    env = os.environ.get
    return LdapConfig(
        env("WHIMBREL_AD_URL", ""),
        env("WHIMBREL_AD_USER", ""),
        env("WHIMBREL_AD_PASSWORD_FILE", ""),
        env("WHIMBREL_AD_CA", ""),
        env("WHIMBREL_AD_BASE", ""),
    )


def from_env() -> Directory | None:
    cfg = config_from_env()
    return LdapDirectory(cfg) if cfg.url else None
