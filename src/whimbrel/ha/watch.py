"""When a host is failed over: the HA monitor's decision, on proof only.

The inventory monitor reports every poll of every host here (the management
channel); each tick also reads the clusters' storage heartbeats (the second
channel) and turns both into each host's state with its evidence
(:mod:`whimbrel.ha.liveness`).  A ``host.failover`` job is submitted only for a
host ``lost`` on both channels for its cluster's detection time, and only while:

* the manager has not lost most hosts at once (then it is the isolated one);
* the fence cap allows it (else the host waits for ``host fence confirm``);
* no failover of that host runs, and ``retry_s`` passed since the last one.

An ``isolated`` host whose isolation response stopped HA VMs gets a failover
that restarts just those, without fencing the host: it is alive and said so.
Each tick also writes each cluster's policy next to the heartbeats.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload, sessionmaker

from whimbrel.domain.host import DETECTION_S, HostState
from whimbrel.domain.job import FINAL_JOB_STATES
from whimbrel.drivers import keeps_own_cluster
from whimbrel.errors import WhimbrelError
from whimbrel.ha.guards import fence_refusal, manager_isolated
from whimbrel.ha.heartbeat import Policy, write_policy
from whimbrel.ha.liveness import Clock, Liveness, Verdict
from whimbrel.ha.storage import heartbeat_dir
from whimbrel.jobs.flows.failover import stranded
from whimbrel.ops import Op, OpHostFailover
from whimbrel.store.models import Cluster, Host, Job
from whimbrel.store.repo import apply_domains, busy_vms, get_host, set_host_state

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Node:
    name: str
    uri: str
    detection_s: float
    hb_dir: Path | None


class FailoverWatch:
    def __init__(
        self,
        sessions: sessionmaker[Session],
        submit: Callable[[Op], int],
        overdue_s: float = 12.0,
        retry_s: float = 15.0,
        storage_period_s: float = 1.0,
        clock: Clock = time.monotonic,
    ):
        self.sessions, self.submit = sessions, submit
        self.retry_s, self.storage_period_s = retry_s, storage_period_s
        self.clock, self.overdue_s = clock, overdue_s
        self._lock = threading.Lock()  # polls report from threads of their own
        self.reset()

    def reset(self) -> None:
        """Forget every observation: a replica that starts leading judges afresh, from
        what it sees itself, never from what it saw in an earlier term."""
        with self._lock:
            self.liveness = Liveness(self.overdue_s, self.clock)
            self.manager_isolated = False
            self._nodes: list[_Node] = []  # the fleet as last read (every storage period)
            self._tried: dict[str, float] = {}
            self._policies: dict[str, Policy] = {}
            self._storage_read = float("-inf")

    def seen(self, host: str, ok: bool, reason: str = "") -> None:
        with self._lock:
            self.liveness.management(host, ok, reason)

    # -- one tick -------------------------------------------------------------

    def tick(self) -> list[str]:
        """Judge every host, record what changed, submit the failovers that are due;
        return the hosts failovers were submitted for."""
        now = self.clock()
        if not 0 <= now - self._storage_read < self.storage_period_s:  # due, or clock reset
            # The fleet, its policies and the heartbeats are read once a period, not
            # at every tick: management verdicts are judged at every tick.
            self._storage_read = now
            self._nodes, policies = self._read_fleet()
            self._write_policies(policies)
            for n in self._nodes:
                with self._lock:
                    self.liveness.storage(n.name, n.hb_dir)
        nodes = self._nodes
        with self._lock:
            verdicts = {n.name: self.liveness.verdict(n.name, n.detection_s) for n in nodes}
        silent = sum(v.state != HostState.CONNECTED for v in verdicts.values())
        isolated = manager_isolated(silent, len(nodes))
        if isolated and not self.manager_isolated:
            log.error(
                "the manager lost %d of %d hosts at once: it takes itself for isolated and "
                "fences nothing",
                silent,
                len(nodes),
            )
        elif self.manager_isolated and not isolated:
            log.warning("the manager reaches its hosts again (%d of %d silent)", silent, len(nodes))
        self.manager_isolated = isolated
        waiting = self._record(nodes, verdicts)
        return self._failovers(nodes, verdicts, waiting)

    def _read_fleet(self) -> tuple[list[_Node], dict[str, Policy]]:
        nodes: list[_Node] = []
        policies: dict[str, Policy] = {}
        with self.sessions() as s:
            clusters = s.scalars(
                select(Cluster).options(
                    selectinload(Cluster.hosts).selectinload(Host.vms),
                    selectinload(Cluster.shared_storage),
                )
            ).all()
            for c in clusters:
                hb = heartbeat_dir(c)
                kvm = [h for h in c.hosts if not keeps_own_cluster(h.uri)]
                if hb is not None and kvm:
                    policies[str(hb)] = Policy(
                        cluster=c.name,
                        detection_s=c.detection_s,
                        isolation_response=c.isolation_response,
                        members={h.name: urlsplit(h.uri).hostname or "" for h in kvm},
                        ha_vms=tuple(sorted(v.name for h in kvm for v in h.vms if v.ha)),
                    )
                for h in c.hosts:
                    nodes.append(_Node(h.name, h.uri, c.detection_s, hb))
            for h in s.scalars(select(Host).where(Host.cluster_id.is_(None))):
                nodes.append(_Node(h.name, h.uri, DETECTION_S, None))
        return nodes, policies

    def _write_policies(self, policies: dict[str, Policy]) -> None:
        for where, policy in policies.items():
            if self._policies.get(where) == policy:
                continue
            try:
                write_policy(Path(where), policy)
                self._policies[where] = policy
            except OSError as exc:
                log.warning("cannot write the HA policy of cluster %s: %s", policy.cluster, exc)

    def _record(self, nodes: list[_Node], verdicts: dict[str, Verdict]) -> dict[str, str]:
        """Write each silent host's state and evidence; return the lost hosts whose
        fencing waits for the administrator, with why."""
        waiting: dict[str, str] = {}
        # The monitor records a host that answers, after reconciling it.
        silent = [n for n in nodes if verdicts[n.name].state != HostState.CONNECTED]
        if not silent:
            return waiting
        with self.sessions.begin() as s:
            busy = busy_vms(s)
            for n in silent:
                v = verdicts[n.name]
                h = s.scalar(select(Host).where(Host.name == n.name))
                if h is None:
                    continue
                state, evidence = v.state, v.evidence
                if h.state == HostState.FENCED:
                    state = HostState.FENCED  # off until it answers again
                    evidence = f"fenced; {v.evidence}"
                elif self.manager_isolated:
                    evidence += (
                        "; the manager lost most hosts at once: it takes itself for "
                        "isolated and fences nothing"
                    )
                elif v.state == HostState.LOST and not keeps_own_cluster(n.uri):
                    why = fence_refusal(s, h)
                    if why:
                        waiting[n.name] = why
                        evidence += (
                            f"; failover waits for 'whimbrel host fence confirm {n.name}': {why}"
                        )
                if set_host_state(h, state, evidence):
                    log.warning("host %s is now %s: %s", n.name, state, evidence)
                # What runs there is unknown now; at every tick, since a VM a job held
                # a moment ago may be free now.
                apply_domains(s, h, None, busy)
        return waiting

    def _failovers(
        self, nodes: list[_Node], verdicts: dict[str, Verdict], waiting: dict[str, str]
    ) -> list[str]:
        if self.manager_isolated:
            return []
        now = self.clock()
        started = []
        for n in nodes:
            v = verdicts[n.name]
            if keeps_own_cluster(n.uri) or n.name in waiting:
                continue
            lost = v.state == HostState.LOST
            if not (lost or v.stopped):
                continue
            if now - self._tried.get(n.name, float("-inf")) < self.retry_s:
                continue
            with self.sessions() as s:
                down = {vm.name for vm in stranded(s, n.name)}
                if not down or _running(s, n.name):
                    continue
                if lost:
                    h = get_host(s, n.name)
                    if fence_refusal(s, h):
                        continue  # one just submitted for another host fills the cap
                    op = OpHostFailover(n.name, v.evidence, heartbeat_seq=v.seq)
                else:  # isolated, and it stopped some of them itself
                    stopped = tuple(vm for vm in v.stopped if vm in down)
                    if not stopped:
                        continue
                    op = OpHostFailover(n.name, v.evidence, heartbeat_seq=v.seq, stopped=stopped)
            self._tried[n.name] = now
            try:
                job = self.submit(op)
            except WhimbrelError as exc:  # it came back, or nothing is left to do
                log.info("no failover for host %s: %s", n.name, exc.cause)
                continue
            log.warning("host %s %s: failover job %d (%s)", n.name, v.state, job, v.evidence)
            started.append(n.name)
        return started


def _running(s: Session, host: str) -> bool:
    return (
        s.scalar(
            select(Job.id).where(
                Job.kind == OpHostFailover.kind,
                Job.subject == host,
                Job.state.not_in(list(FINAL_JOB_STATES)),
            )
        )
        is not None
    )
