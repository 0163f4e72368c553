"""The scale simulator: the fake driver serving thousands of hosts from one process.

Each host answers after a round trip drawn around ``latency_ms`` (a libvirt call
over TLS on a datacentre network), and ``event_rate`` of them per second push a
lifecycle event.  Used only by the benchmarks: a feature's proof runs in the lab.
"""

from __future__ import annotations

import random
import threading
import time
import uuid

from whimbrel.domain.vm import DomainInfo, DomainSpec, VmState
from whimbrel.drivers.fake import FakeFleet, FakeHost, FakeHostState, _Domain


class SimHost(FakeHost):
    def __init__(self, fleet: SimFleet, host: FakeHostState, uri: str):
        super().__init__(fleet, host, uri)
        self.sim = fleet

    def list_domains(self) -> list[DomainInfo]:
        self.sim.round_trip()
        return super().list_domains()

    def inventory(self):  # type: ignore[no-untyped-def]
        self.sim.round_trip()
        return super().inventory()


class SimFleet(FakeFleet):
    def __init__(self, latency_ms: float = 5.0, seed: int = 1) -> None:
        super().__init__()
        self.latency_ms = latency_ms
        self._rng = random.Random(seed)
        self._rng_lock = threading.Lock()
        self.calls = 0

    def round_trip(self) -> None:
        with self._rng_lock:
            self.calls += 1
            t = self._rng.lognormvariate(0, 0.5) * self.latency_ms / 1000
        time.sleep(t)

    def open(self, uri: str) -> SimHost:
        return SimHost(self, self.host_of_uri(uri), uri)

    def add_running(self, host: str, name: str, memory_mib: int = 1024) -> None:
        """A VM that already runs on ``host`` (imported with the host)."""
        spec = DomainSpec(name, str(uuid.uuid4()), memory_mib, 1, "kvm", "pc-q35-7.2")
        self.hosts[host].domains[name] = _Domain(spec, VmState.RUNNING, time.monotonic())

    def emit_events(self, per_second: float, stop: threading.Event) -> None:
        """Lifecycle events from random hosts at ``per_second``, until ``stop``."""
        names = list(self.hosts)
        while not stop.wait(1 / per_second):
            h = self.hosts[self._rng.choice(names)]
            if h.domains:
                h.emit(next(iter(h.domains)), "resumed")
