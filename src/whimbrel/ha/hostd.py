"""whimbrel-heartbeat: the service each clustered host runs beside libvirtd.

Every second it rewrites the host's heartbeat on the cluster's shared storage
(:mod:`whimbrel.ha.heartbeat`).  It is a process of its own, so it beats on while
libvirtd hangs or restarts, and stops with the host.  It also:

* checks whether the host still reaches its peers (their libvirt port; a refused
  connection proves the network works) and any gateways given: reaching none of
  them for the policy's isolation time, the host is **isolated** and says so in
  its heartbeat; the cluster's isolation response then applies to its HA VMs
  (``leave``, ``shutdown`` or ``power-off``), and the VMs it stopped are named in
  the heartbeat once their processes are gone, so the manager restarts them
  elsewhere without fencing a host that is alive;
* **fences itself**: when the heartbeat cannot be renewed for the policy's
  ``self_fence_s`` (60 % of the detection time), the host's QEMU processes that
  use the shared storage are killed, so by the time the manager may take the
  host for dead and start its VMs elsewhere, no copy of them still writes.
  (sanlock does the same with its watchdog; see the README for why this lab
  does not run sanlock.)

Run it as ``whimbrel heartbeat run --host NAME --storage SHARED_PATH``.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from whimbrel.domain.host import IsolationResponse
from whimbrel.ha.heartbeat import HEARTBEAT_DIR, INTERVAL_S, Policy, Record, read_policy
from whimbrel.ha.heartbeat import write_atomic as _write

LIBVIRT_TLS_PORT = 16514
PROBE_TIMEOUT_S = 0.5
SHUTDOWN_GRACE_S = 30.0


def _log(msg: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} whimbrel-heartbeat: {msg}", flush=True)


def _wall() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def reachable(address: str, port: int = LIBVIRT_TLS_PORT, timeout: float = PROBE_TIMEOUT_S) -> bool:
    """Whether ``address`` answers on the network at all: a refused connection
    is an answer (the peer's libvirtd may be down; its network is not)."""
    try:
        with socket.create_connection((address, port), timeout=timeout):
            return True
    except ConnectionRefusedError:
        return True
    except OSError:
        return False


@dataclass(frozen=True)
class Guest:
    pid: int
    name: str
    uses: tuple[str, ...]  # the paths on its command line


def _own_netns() -> str:
    return os.readlink("/proc/self/ns/net")


def guests(netns: str | None = None) -> Iterator[Guest]:
    """The QEMU processes of this host (of its network namespace: lab hosts share /proc)."""
    netns = netns or _own_netns()
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            if not Path(entry.path, "comm").read_text().startswith("qemu-system"):
                continue
            if os.readlink(f"{entry.path}/ns/net") != netns:
                continue
            args = Path(entry.path, "cmdline").read_bytes().decode(errors="replace").split("\0")
        except OSError:
            continue
        name = ""
        for i, a in enumerate(args[:-1]):
            if a == "-name":
                first = args[i + 1].split(",")[0]
                name = first.removeprefix("guest=")
        yield Guest(int(entry.name), name, tuple(a for a in args if "/" in a))


def _gone(pid: int, within: float) -> bool:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if not Path(f"/proc/{pid}").exists():
            return True
        time.sleep(0.1)
    return not Path(f"/proc/{pid}").exists()


def kill(g: Guest, sig: signal.Signals = signal.SIGKILL, within: float = 5.0) -> bool:
    with contextlib.suppress(ProcessLookupError):
        os.kill(g.pid, sig)
    return _gone(g.pid, within)


class HeartbeatService:
    def __init__(
        self,
        host: str,
        storage: Path,
        gateways: tuple[str, ...] = (),
        interval_s: float = INTERVAL_S,
        libvirt_uri: str = "qemu:///system",
        probe: Callable[[str], bool] = reachable,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.host, self.storage, self.gateways = host, storage, gateways
        self.dir = storage / HEARTBEAT_DIR
        self.interval_s, self.libvirt_uri = interval_s, libvirt_uri
        self.probe, self.clock = probe, clock
        self.policy = Policy()
        self.seq = int(time.time() * 1000)  # grows across restarts of the service
        self.last_ok = clock()
        self.isolated_since: float | None = None
        self.isolated_wall = ""
        self.stopped: dict[str, str] = {}
        self.self_fenced: dict[str, str] = {}
        self._stopping: set[str] = set()
        self._lock = threading.Lock()
        self._probe = ThreadPoolExecutor(8, thread_name_prefix="probe")
        self._netns = _own_netns()

    # -- one beat -------------------------------------------------------------

    def beat(self) -> Record:
        self.policy = read_policy(self.dir) or self.policy
        peers = self._peers()
        self._isolation(peers)
        with self._lock:
            stopped = dict(self.stopped)
        record = Record(
            host=self.host,
            seq=self.seq + 1,
            written_at=_wall(),
            interval_s=self.interval_s,
            peers=peers,
            isolated=self.isolated_since is not None,
            isolated_since=self.isolated_wall,
            stopped=stopped,
            self_fenced=dict(self.self_fenced),
        )
        try:
            self.dir.mkdir(parents=True, exist_ok=True)
            _write(self.dir / f"{self.host}.json", record.to_dict())
        except OSError as exc:
            self._renewal_failed(exc)
            return record
        self.seq += 1
        if self.clock() - self.last_ok > 2 * self.interval_s:
            _log(f"heartbeat renewed again after {self.clock() - self.last_ok:.1f} s")
        self.last_ok = self.clock()
        return record

    def _peers(self) -> dict[str, bool]:
        targets = {n: a for n, a in self.policy.members.items() if n != self.host}
        targets |= {f"gateway {g}": g for g in self.gateways}
        futures = {n: self._probe.submit(self.probe, a) for n, a in targets.items()}
        return {n: f.result() for n, f in futures.items()}

    def _isolation(self, peers: dict[str, bool]) -> None:
        cut = bool(peers) and not any(peers.values())
        if not cut:
            if self.isolated_since is not None:
                _log("peers reachable again: no longer isolated")
            self.isolated_since, self.isolated_wall = None, ""
            with self._lock:
                self.stopped.clear()
            return
        now = self.clock()
        if self.isolated_since is None:
            self.isolated_since, self.isolated_wall = now, _wall()
            _log(f"no peer answers ({', '.join(peers)}): isolated?")
        response = self.policy.isolation_response
        if (
            now - self.isolated_since < self.policy.isolation_s
            or response == IsolationResponse.LEAVE
        ):
            return
        for g in guests(self._netns):
            with self._lock:  # the stopping threads discard from it
                if g.name not in self.policy.ha_vms or g.name in self._stopping:
                    continue
                self._stopping.add(g.name)
            threading.Thread(target=self._stop, args=(g, response), daemon=True).start()

    def _stop(self, g: Guest, response: str) -> None:
        """The isolation response for one HA VM; it is reported only once its process is gone."""
        _log(f"isolated: {response} of HA VM {g.name} (pid {g.pid})")
        gone = False
        if response == IsolationResponse.SHUTDOWN:
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                subprocess.run(
                    ["virsh", "-q", "-c", self.libvirt_uri, "shutdown", g.name],
                    capture_output=True,
                    timeout=10,
                )
            gone = _gone(g.pid, SHUTDOWN_GRACE_S)
        if not gone:
            gone = kill(g, signal.SIGTERM, 5.0) or kill(g, signal.SIGKILL, 5.0)
        with self._lock:
            if gone:
                self.stopped[g.name] = _wall()
            self._stopping.discard(g.name)
        if gone:
            _log(f"HA VM {g.name} stopped")

    def _renewal_failed(self, exc: OSError) -> None:
        silent = self.clock() - self.last_ok
        _log(f"cannot renew the heartbeat ({exc.strerror or exc}); silent {silent:.1f} s")
        if silent < self.policy.self_fence_s:
            return
        root = str(self.storage)
        for g in guests(self._netns):
            if any(root in p for p in g.uses) and g.name not in self.self_fenced:
                killed = kill(g)
                self.self_fenced[g.name] = _wall()
                _log(
                    f"self-fence: killed {g.name} (pid {g.pid}, gone: {killed}) "
                    f"after {silent:.1f} s without a heartbeat"
                )

    # -- the service ----------------------------------------------------------

    def run(self, stop: threading.Event | None = None) -> None:
        stop = stop or threading.Event()
        _log(f"host {self.host}, heartbeat in {self.dir} every {self.interval_s} s")
        while not stop.is_set():
            t0 = time.monotonic()
            try:
                self.beat()
            except Exception as exc:  # the service must outlive any one bad beat
                _log(f"beat failed: {type(exc).__name__}: {exc}")
            stop.wait(max(0.0, self.interval_s - (time.monotonic() - t0)))


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(prog="whimbrel-heartbeat", description=__doc__.split("\n")[0])
    p.add_argument("--host", required=True, help="this host's name in Whimbrel")
    p.add_argument("--storage", required=True, help="the cluster's shared storage path")
    p.add_argument("--gateway", action="append", default=[], help="an address to probe too")
    p.add_argument("--interval", type=float, default=INTERVAL_S)
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    HeartbeatService(a.host, Path(a.storage), tuple(a.gateway), a.interval).run()


if __name__ == "__main__":
    main()
