"""Live migration, storage moves and the probes preflight needs, over libvirt.

The blocking ``migrateToURI3``/``migrate3`` call runs on a connection of its
own: libvirt-python cannot abort or tune a job from another thread on the
connection that is blocked in the migration call (it hangs until the job ends).
Polling, tuning and aborting use the driver's main connection.
"""

from __future__ import annotations

import contextlib
import time
import xml.etree.ElementTree as ET
from typing import TYPE_CHECKING, Any

import libvirt

from whimbrel.domain.migration import (
    Auth,
    DiskMove,
    MigrationRequest,
    MigrationResult,
    MigrationStats,
    Performance,
)
from whimbrel.drivers.libvirt.errors import call_error, connect_error, unreachable
from whimbrel.drivers.libvirt.uri import with_pkipath
from whimbrel.errors import (
    HostUnreachable,
    HostUntrusted,
    HypervisorError,
    WhimbrelError,
    WrongState,
)

if TYPE_CHECKING:
    from whimbrel.drivers.libvirt.migration_ops import MigrationOps

PROBE_NAME = "whimbrel-trust-probe"
_PROBE_XML = (
    "<domain type='qemu'><name>{name}</name><memory unit='MiB'>16</memory>"
    "<os><type arch='x86_64'>hvm</type></os></domain>"
)


def check_peer_trust(host: MigrationOps, dest_uri: str, peer_pki: str) -> None:
    """Prove that this host's libvirtd can log in to ``dest_uri`` with its own certificate.

    libvirt has no call for that, so an empty definition (no disks, never
    started, no QEMU process) is moved offline peer-to-peer and removed from
    both hosts at once: the TLS handshake between the two daemons is the real
    one a peer-to-peer migration makes.  Nothing is left behind.
    """
    name = f"{PROBE_NAME}-{int(time.time() * 1000) % 10**9}"
    conn = host.conn
    dom = host._call("define trust probe", lambda: conn.defineXML(_PROBE_XML.format(name=name)))
    flags = (
        libvirt.VIR_MIGRATE_PEER2PEER
        | libvirt.VIR_MIGRATE_OFFLINE
        | libvirt.VIR_MIGRATE_PERSIST_DEST
        | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    )
    try:
        dom.migrateToURI3(with_pkipath(dest_uri, peer_pki), {}, flags)
    except libvirt.libvirtError as exc:
        with contextlib.suppress(libvirt.libvirtError):
            dom.undefine()
        raise peer_error(host.name, dest_uri, exc) from exc
    # The probe now exists on the destination only: remove it there.
    dconn = libvirt.open(host.open_uri_for(dest_uri))
    try:
        with contextlib.suppress(libvirt.libvirtError):
            dconn.lookupByName(name).undefine()
    finally:
        dconn.close()


def peer_error(src: str, dest_uri: str, exc: libvirt.libvirtError) -> Exception:
    """Put a failed host-to-host login into words (as Microsoft explains 0x8009030E)."""
    text = str(exc)
    if "Unable to read TLS confirmation" in text or "TLS handshake" in text:
        return HostUntrusted(
            "E_PEER_UNTRUSTED",
            f"the destination ({dest_uri}) refused the certificate host {src} presents "
            "when it connects to it itself (peer authentication)",
            "issue the source host a client certificate from a CA the destination trusts "
            f"('whimbrel pki issue {src}') and allow its name in the destination's "
            "tls_allowed_dn_list, or set 'auth managed' on the source host",
            text,
        )
    if "Our own certificate" in text or "Cannot read" in text:
        return HostUntrusted(
            "E_PEER_CERT_INVALID",
            f"host {src} has no valid client certificate of its own for peer authentication",
            f"install a client certificate on {src} ('whimbrel pki issue {src}'), "
            "or set 'auth managed' on it",
            text,
        )
    if "Unable to connect" in text or "No route" in text or "Connection refused" in text:
        return HostUntrusted(
            "E_PEER_UNREACHABLE",
            f"host {src} cannot reach the destination's libvirt at {dest_uri}",
            "check the network between the two hosts and that libvirtd listens for TLS "
            "on the destination",
            text,
        )
    return call_error(src, "peer login to the destination", exc)


def _flags(req: MigrationRequest, live: bool, auto_converge: bool) -> int:
    f = libvirt.VIR_MIGRATE_PERSIST_DEST | libvirt.VIR_MIGRATE_UNDEFINE_SOURCE
    if req.auth == Auth.PEER:
        f |= libvirt.VIR_MIGRATE_PEER2PEER
    if not live:  # a stopped VM: only its definition moves, no stream options apply
        return int(f | libvirt.VIR_MIGRATE_OFFLINE)
    f |= libvirt.VIR_MIGRATE_LIVE
    if req.encrypt:
        f |= libvirt.VIR_MIGRATE_TLS
    if req.performance == Performance.COMPRESSION:
        f |= libvirt.VIR_MIGRATE_COMPRESSED
    elif req.performance == Performance.PARALLEL:
        f |= libvirt.VIR_MIGRATE_PARALLEL
    if req.copy_disks:
        f |= libvirt.VIR_MIGRATE_NON_SHARED_DISK
    if req.shared_unsafe:
        # libvirt recognises only cluster file systems (NFS, GFS2, Ceph...) as
        # shared and calls anything else unsafe.  The manager passes this only
        # for disks on storage the administrator declared shared by both hosts
        # and opened with cache=none (no host page cache to go stale), which is
        # the condition libvirt's check stands for.
        f |= libvirt.VIR_MIGRATE_UNSAFE
    if auto_converge:
        f |= libvirt.VIR_MIGRATE_AUTO_CONVERGE
    if req.policy.postcopy:
        f |= libvirt.VIR_MIGRATE_POSTCOPY
    return int(f)


def _params(req: MigrationRequest, auto_converge: bool) -> dict[str, Any]:
    p: dict[str, Any] = {}
    if req.address:  # none: the destination listens where its migration_host says
        p[libvirt.VIR_MIGRATE_PARAM_URI] = f"tcp://{req.address}"
    if req.performance == Performance.PARALLEL:
        p[libvirt.VIR_MIGRATE_PARAM_PARALLEL_CONNECTIONS] = req.parallel_connections
    if req.performance == Performance.COMPRESSION:
        p[libvirt.VIR_MIGRATE_PARAM_COMPRESSION] = "xbzrle"
    if req.copy_disks:
        p[libvirt.VIR_MIGRATE_PARAM_MIGRATE_DISKS] = [d.target for d in req.copy_disks]
    if req.policy.bandwidth_mib_s:
        # The limit is the administrator's for the whole move: post-copy has its own.
        p[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH] = req.policy.bandwidth_mib_s
        if req.policy.postcopy:
            p[libvirt.VIR_MIGRATE_PARAM_BANDWIDTH_POSTCOPY] = req.policy.bandwidth_mib_s
    if auto_converge:
        # Faster than QEMU's 20 % then +10 %: QEMU 7.2 needed 99 % throttle to end
        # a heavy copy, and reaching it slowly only lengthens the copy.
        p[libvirt.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INITIAL] = 30
        p[libvirt.VIR_MIGRATE_PARAM_AUTO_CONVERGE_INCREMENT] = 20
    return p


def migrate(
    host: MigrationOps, name: str, req: MigrationRequest, auto_converge: bool, resume: bool = False
) -> None:
    """Run the migration to the end (blocking); with ``resume``, the post-copy that broke,
    from where it stopped (libvirt wants the first call's flags and parameters again).
    Raises: HypervisorError, HostUntrusted."""
    conn = libvirt.open(host.open_uri)
    try:
        dom = conn.lookupByName(name)
        live = dom.isActive() == 1
        flags, params = _flags(req, live, auto_converge), _params(req, auto_converge)
        if resume:
            flags |= libvirt.VIR_MIGRATE_POSTCOPY | libvirt.VIR_MIGRATE_POSTCOPY_RESUME
        elif live:
            dom.migrateSetMaxDowntime(req.policy.downtime_ms, 0)
        else:
            params = {}
        moved = {d.target: d.dest_path for d in req.copy_disks if d.dest_path != d.source_path}
        if moved:  # new disk paths on the destination: send definitions that use them
            live_xml = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_MIGRATABLE)
            params[libvirt.VIR_MIGRATE_PARAM_DEST_XML] = with_disk_paths(live_xml, moved)
            persist = dom.XMLDesc(libvirt.VIR_DOMAIN_XML_INACTIVE)
            params[libvirt.VIR_MIGRATE_PARAM_PERSIST_XML] = with_disk_paths(persist, moved)
        if req.auth == Auth.PEER:
            dom.migrateToURI3(with_pkipath(req.dest_uri, req.peer_pki), params, flags)
        else:
            try:
                dconn = libvirt.open(host.open_uri_for(req.dest_uri))
            except libvirt.libvirtError as exc:
                raise connect_error(req.dest_uri, exc) from exc
            try:
                dom.migrate3(dconn, params, flags)
            finally:
                dconn.close()
    except libvirt.libvirtError as exc:
        if req.auth == Auth.PEER and "TLS" in str(exc):
            raise peer_error(host.name, req.dest_uri, exc) from exc
        raise _migration_error(host.name, name, exc) from exc
    finally:
        with contextlib.suppress(libvirt.libvirtError):
            conn.close()


def _migration_error(src: str, name: str, exc: libvirt.libvirtError) -> WhimbrelError:
    text = str(exc)
    if unreachable(text):  # the link to a host broke: where the VM runs is unknown
        return HostUnreachable(
            "E_MIGRATION_INTERRUPTED",
            f"the connection to host {src} broke during the migration of VM {name}",
            "the job reads where the VM runs before it undoes anything; check the host and "
            "its libvirtd, then 'whimbrel vm show' and retry the move",
            text,
        )
    if "canceled by client" in text or "cancelled" in text.lower():
        return WrongState(
            "E_MIGRATION_ABORTED",
            f"the migration of VM {name} was aborted; it is still running on {src}",
            "see the job's messages for why (cancel, timeout or a host failure)",
            text,
        )
    return HypervisorError(
        "E_MIGRATION_FAILED",
        f"the migration of VM {name} from {src} failed: {text}",
        "read the detail; the VM is still on the source. Run 'whimbrel vm migrate --check' "
        "for a diagnosis",
        text,
    )


def stats(dom: libvirt.virDomain, completed: bool = False) -> MigrationStats:
    flags = libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED if completed else 0
    s = dom.jobStats(flags)
    kind = s.get("type", 0)
    active = kind in (libvirt.VIR_DOMAIN_JOB_BOUNDED, libvirt.VIR_DOMAIN_JOB_UNBOUNDED)
    return MigrationStats(
        active=active,
        elapsed_ms=int(s.get("time_elapsed", 0)),
        memory_total=int(s.get("memory_total", 0)),
        memory_processed=int(s.get("memory_processed", 0)),
        memory_remaining=int(s.get("memory_remaining", 0)),
        memory_bps=int(s.get("memory_bps", 0)),
        dirty_rate_pps=int(s.get("memory_dirty_rate", 0)),
        page_size=int(s.get("memory_page_size", 4096)) or 4096,
        iteration=int(s.get("memory_iteration", 0)),
        disk_total=int(s.get("disk_total", 0)),
        disk_processed=int(s.get("disk_processed", 0)),
        disk_remaining=int(s.get("disk_remaining", 0)),
        disk_bps=int(s.get("disk_bps", 0)),
        downtime_ms=int(s.get("downtime", 0)),
        postcopy=int(s.get("memory_postcopy_requests", 0)) > 0,
    )


def result(dom: libvirt.virDomain, strategy: list[str]) -> MigrationResult:
    s = dom.jobStats(libvirt.VIR_DOMAIN_JOB_STATS_COMPLETED)
    return MigrationResult(
        total_ms=int(s.get("time_elapsed", 0)),
        downtime_ms=int(s.get("downtime", 0)),
        memory_bytes=int(s.get("memory_processed", 0)),
        disk_bytes=int(s.get("disk_processed", 0)),
        iterations=int(s.get("memory_iteration", 0)),
        strategy=strategy,
    )


def dirty_rate(dom: libvirt.virDomain, conn: libvirt.virConnect, seconds: int) -> int:
    """Bytes per second the guest dirties, sampled by QEMU (page sampling); -1 if unknown."""
    try:
        dom.startDirtyRateCalc(seconds, 0)
    except libvirt.libvirtError:
        return -1
    deadline = time.monotonic() + seconds + 3
    while time.monotonic() < deadline:
        time.sleep(0.25)
        try:
            st = conn.domainListGetStats([dom], libvirt.VIR_DOMAIN_STATS_DIRTYRATE)[0][1]
        except libvirt.libvirtError:  # a sample lost: the rate is unknown, not an error
            return -1
        if st.get("dirtyrate.calc_status") == 2:  # measured
            return int(st.get("dirtyrate.megabytes_per_second", 0)) << 20
    return -1


def move_disks(host: MigrationOps, name: str, moves: list[DiskMove], progress: Any) -> None:
    """Copy each disk of a running VM to its new path while it runs, then switch to it.

    Hyper-V's Move-VMStorage.  The copy is a mirror (``blockCopy``): writes go
    to both images until the pivot, so the guest never sees a stale block.
    Raises: HypervisorError; on error every unfinished copy is abandoned and
    the VM keeps using its old disks.
    """
    dom = host._lookup(name)
    flags = libvirt.VIR_DOMAIN_BLOCK_COPY_REUSE_EXT | libvirt.VIR_DOMAIN_BLOCK_COPY_TRANSIENT_JOB
    started: list[str] = []
    try:
        for mv in moves:
            xml = f"<disk type='file'><source file='{mv.dest_path}'/><driver type='qcow2'/></disk>"
            try:
                dom.blockCopy(mv.target, xml, {}, flags)
            except libvirt.libvirtError as exc:
                raise call_error(host.name, f"copy disk {mv.target}", exc) from exc
            started.append(mv.target)
        total = sum(m.size_bytes for m in moves) or 1
        while True:
            done, ready = 0, True
            for t in started:
                try:
                    info = dom.blockJobInfo(t, 0)
                except libvirt.libvirtError as exc:
                    raise call_error(host.name, f"copy disk {t}", exc) from exc
                cur, end = int(info.get("cur", 0)), int(info.get("end", 0))
                done += cur
                ready = ready and end > 0 and cur == end
            progress(done, total)
            if ready:
                break
            time.sleep(0.2)
        for t in list(started):
            try:
                dom.blockJobAbort(t, libvirt.VIR_DOMAIN_BLOCK_JOB_ABORT_PIVOT)
            except libvirt.libvirtError as exc:
                raise call_error(host.name, f"switch disk {t}", exc) from exc
            started.remove(t)
    finally:
        for t in started:  # unfinished: drop the copy, keep the old disk
            with contextlib.suppress(libvirt.libvirtError):
                dom.blockJobAbort(t, 0)


def disk_paths(xml: str) -> dict[str, str]:
    root = ET.fromstring(xml)
    out = {}
    for d in root.findall("devices/disk"):
        tgt, src = d.find("target"), d.find("source")
        if tgt is not None and src is not None and src.get("file"):
            out[tgt.get("dev", "")] = src.get("file", "")
    return out


def with_disk_paths(xml: str, paths: dict[str, str]) -> str:
    """The domain XML with the disks of ``paths`` (target → new file) moved."""
    root = ET.fromstring(xml)
    for d in root.findall("devices/disk"):
        tgt, src = d.find("target"), d.find("source")
        if tgt is not None and src is not None and tgt.get("dev") in paths:
            src.set("file", paths[tgt.get("dev", "")])
    return ET.tostring(root, encoding="unicode")
