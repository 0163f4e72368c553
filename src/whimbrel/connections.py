"""One shared driver connection per host URI, opened on first use.

libvirt connections are thread-safe, so every job and the monitor share them;
a connection that failed is dropped and reopened on the next call.
"""

from __future__ import annotations

import threading
from collections.abc import Callable

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.access.vault import Vault
from whimbrel.drivers.base import HostDriver
from whimbrel.errors import not_found
from whimbrel.store.models import Host

Opener = Callable[[str], HostDriver]


class ConnectionPool:
    def __init__(self, sessions: sessionmaker[Session], opener: Opener, vault: Vault | None = None):
        self._sessions = sessions
        self.vault = vault  # opens the hosts' sealed credentials (their fence passwords)
        self._opener = opener
        self._by_uri: dict[str, HostDriver] = {}
        self._lock = threading.Lock()

    def uri_of(self, host_name: str) -> str:
        with self._sessions() as s:
            uri = s.scalar(select(Host.uri).where(Host.name == host_name))
        if uri is None:
            raise not_found("host", host_name)
        return uri

    def for_host(self, host_name: str) -> HostDriver:
        return self.for_uri(self.uri_of(host_name))

    def for_uri(self, uri: str) -> HostDriver:
        with self._lock:
            drv = self._by_uri.get(uri)
        if drv is not None:
            return drv
        drv = self._opener(uri)  # outside the lock: a dead host must not stall the others
        with self._lock:
            return self._by_uri.setdefault(uri, drv)

    def probe(self, uri: str, timeout_s: float) -> str:
        """Ask the host for its domains on a fresh connection, waiting at most
        ``timeout_s``; return "" if it answered, else why not.  The pool's own
        connection is left alone, and a host that hangs holds only this probe."""
        answer: list[str] = []

        def ask() -> None:
            try:
                drv = self._opener(uri)
                try:
                    drv.list_domains()
                finally:
                    drv.close()
                answer.append("")
            except Exception as exc:  # any failure is an answer of "not alive"
                answer.append(f"{type(exc).__name__}: {getattr(exc, 'cause', exc)}")

        t = threading.Thread(target=ask, name=f"probe {uri}", daemon=True)
        t.start()
        t.join(timeout_s)
        return answer[0] if answer else f"no answer within {timeout_s:g} s"

    def open_now(self) -> list[tuple[str, HostDriver]]:
        """The connections open at this moment (the monitor reads their events)."""
        with self._lock:
            return list(self._by_uri.items())

    def drop(self, uri: str) -> None:
        with self._lock:
            drv = self._by_uri.pop(uri, None)
        if drv is not None:
            drv.close()

    def close(self) -> None:
        with self._lock:
            drvs, self._by_uri = list(self._by_uri.values()), {}
        for drv in drvs:
            drv.close()
