"""The migration half of :class:`whimbrel.drivers.libvirt.driver.LibvirtHost`."""

from __future__ import annotations

import contextlib
import xml.etree.ElementTree as ET
from collections.abc import Callable
from typing import TypeVar

import libvirt

from whimbrel.domain.migration import DiskMove, MigrationRequest, MigrationResult, MigrationStats
from whimbrel.drivers.libvirt import migration as mig
from whimbrel.drivers.libvirt.conn import Connection
from whimbrel.drivers.libvirt.errors import call_error

T = TypeVar("T")


class MigrationOps(Connection):
    """Moves, disk copies and saved states, on the host's one connection."""

    def definition(self, name: str, migratable: bool = False) -> str:
        flags = libvirt.VIR_DOMAIN_XML_INACTIVE
        if migratable:
            flags = libvirt.VIR_DOMAIN_XML_MIGRATABLE
        dom = self._lookup(name)
        return str(self._call(f"definition of VM {name}", lambda: dom.XMLDesc(flags)))

    def relocate_disks(self, name: str, paths: dict[str, str]) -> None:
        xml = mig.with_disk_paths(self.definition(name), paths)
        self._call(f"update definition of VM {name}", lambda: self.conn.defineXML(xml))

    def domain_cpu(self, name: str) -> str:
        # The running guest's CPU (what the destination must provide), not the
        # next boot's: the two differ after the definition was edited.
        cpu = ET.fromstring(self.definition(name, migratable=True)).find("cpu")
        return ET.tostring(cpu, encoding="unicode") if cpu is not None else ""

    def compare_cpu(self, cpu_xml: str, virt_type: str) -> list[str]:
        """Features the guest CPU needs that this host lacks; [] when it can run it."""
        try:
            self.conn.compareHypervisorCPU(
                None,
                "x86_64",
                None,
                virt_type,
                cpu_xml,
                libvirt.VIR_CONNECT_COMPARE_CPU_FAIL_INCOMPATIBLE,
            )
        except libvirt.libvirtError as exc:
            text = str(exc)
            if "required features:" in text:
                return [f.strip() for f in text.split("required features:")[1].split(",")]
            if "incompatible" in text:
                return [text]
            raise call_error(self.name, "compare CPU", exc) from exc
        return []

    def dirty_rate(self, name: str, seconds: int = 1) -> int:
        return mig.dirty_rate(self._lookup(name), self.conn, seconds)

    def check_peer_trust(self, dest_uri: str, peer_pki: str) -> None:
        mig.check_peer_trust(self, dest_uri, peer_pki)

    def migrate(self, name: str, req: MigrationRequest, auto_converge: bool) -> None:
        mig.migrate(self, name, req, auto_converge)

    def migration_stats(self, name: str) -> MigrationStats:
        dom = self._lookup(name)
        return self._call(f"migration job of VM {name}", lambda: mig.stats(dom))

    def migration_result(self, name: str, strategy: list[str]) -> MigrationResult:
        dom = self._lookup(name)
        return self._call(f"completed job of VM {name}", lambda: mig.result(dom, strategy))

    def tune_migration(self, name: str, downtime_ms: int = 0, postcopy: bool = False) -> None:
        dom = self._lookup(name)
        if downtime_ms:
            self._call("set downtime", lambda: dom.migrateSetMaxDowntime(downtime_ms, 0))
        if postcopy:
            self._call("switch to post-copy", lambda: dom.migrateStartPostCopy(0))

    def pause_postcopy(self, name: str) -> None:
        dom = self._lookup(name)
        self._call(
            "pause post-copy",
            lambda: dom.abortJobFlags(libvirt.VIR_DOMAIN_ABORT_JOB_POSTCOPY),
        )

    def resume_postcopy(self, name: str, req: MigrationRequest) -> None:
        mig.migrate(self, name, req, False, resume=True)

    def abort_migration(self, name: str) -> None:
        dom = self._lookup(name)
        with contextlib.suppress(libvirt.libvirtError):  # no job left: nothing to abort
            dom.abortJob()

    def pause(self, name: str) -> None:
        dom = self._lookup(name)
        self._call(f"pause VM {name}", dom.suspend)

    def resume(self, name: str) -> None:
        dom = self._lookup(name)
        state = self._call(f"state of VM {name}", lambda: dom.state(0))
        if state[0] == libvirt.VIR_DOMAIN_PAUSED:
            self._call(f"resume VM {name}", dom.resume)

    def move_disks(
        self, name: str, moves: list[DiskMove], progress: Callable[[int, int], None]
    ) -> None:
        mig.move_disks(self, name, moves, progress)

    def save_to(self, name: str, path: str) -> None:
        dom = self._lookup(name)
        self._call(f"save VM {name} to {path}", lambda: dom.save(path))

    def restore_from(self, path: str) -> None:
        self._call(
            f"restore from {path}",
            lambda: self.conn.restoreFlags(path, None, libvirt.VIR_DOMAIN_SAVE_RUNNING),
        )

    def delete_file(self, path: str) -> None:
        """A saved-state file on shared storage, removed through its pool."""
        self.delete_volume(path)
