"""Login of a directory user: an LDAPS simple bind as ``name@domain`` with their password.

The directory is the one the manager already reads for Hyper-V's delegation
(``WHIMBREL_AD_URL``, ``WHIMBREL_AD_CA``); the domain is the part of
``WHIMBREL_AD_USER`` after '@', or ``WHIMBREL_LOGIN_DOMAIN``.  Whimbrel keeps no
password of such a user; their roles are Whimbrel's grants.
"""

from __future__ import annotations

import os
import ssl

from whimbrel.errors import HostUnreachable, InvalidInput


class DirectoryLogin:
    def __init__(self, url: str, domain: str, ca: str = ""):
        self.url, self.domain, self.ca = url, domain, ca

    def check(self, name: str, password: str) -> bool:
        """True when the directory accepts the password."""
        from ldap3 import Connection, Server, Tls
        from ldap3.core.exceptions import LDAPBindError, LDAPException

        if not password:  # an empty password is an unauthenticated bind: it "succeeds"
            return False
        tls = Tls(validate=ssl.CERT_REQUIRED, ca_certs_file=self.ca or None)
        try:
            server = Server(self.url, tls=tls, connect_timeout=5)
            conn = Connection(server, user=f"{name}@{self.domain}", password=password)
            ok = bool(conn.bind())
            conn.unbind()
            return ok
        except LDAPBindError:
            return False
        except (LDAPException, OSError) as exc:
            raise HostUnreachable(
                "E_LOGIN_DIRECTORY_UNREACHABLE",
                f"the directory at {self.url} that checks the passwords of directory users "
                "does not answer over LDAPS",
                "check WHIMBREL_AD_URL, that TCP 636 is open and that WHIMBREL_AD_CA signed "
                "the domain controller's certificate; local users can still log in",
                str(exc),
            ) from exc


def from_env() -> DirectoryLogin | None:
    env = os.environ.get
    url = env("WHIMBREL_AD_URL", "")
    if not url:
        return None
    domain = env("WHIMBREL_LOGIN_DOMAIN", "") or env("WHIMBREL_AD_USER", "").partition("@")[2]
    if not domain:
        raise InvalidInput(
            "E_LOGIN_DOMAIN",
            "directory users cannot log in: the domain of their names is unknown",
            "set WHIMBREL_LOGIN_DOMAIN (for example corp.example), or WHIMBREL_AD_USER as "
            "user@domain",
        )
    return DirectoryLogin(url, domain, env("WHIMBREL_AD_CA", ""))
