"""Fence agents: power a lost host off, and prove it, before its VMs start elsewhere.

A host the manager cannot reach may still run its VMs (only its management
link is cut); starting them elsewhere would run them twice, and disk leases
alone do not prevent that (a lock daemon that dies drops its leases).  So
failover first fences the host: an agent switches it off and confirms it is
off, and that confirmation is what proves the host dead.

Agents:
* ``lab``: a lab host's power is its network namespace (``wb<lab>-<host>``, that
  host's own and no other); the agent SIGKILLs every process in it and checks that none
  is left.
* ``fence_*``: the agents of Debian's ``fence-agents`` package
  (``fence_ipmilan``, ``fence_redfish``, ...), run from its directory and no other
  (``$WHIMBREL_FENCE_AGENT_DIR``, ``/usr/sbin``), with only the options the agent's own
  metadata documents, never one that names a program to run (``*_path``) or weakens TLS;
  given their options on stdin (``name=value`` lines, so passwords never show in a
  process list), asked to power off and then for the status, which must say OFF.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import time
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from whimbrel.access.vault import is_secret
from whimbrel.errors import HostUnreachable, InvalidInput
from whimbrel.lab import netns

AGENT_NAME = re.compile(r"fence_[a-z0-9_]+")
# Options that run another program or switch a check off, whatever the agent documents.
REFUSED_OPTION = re.compile(r".*_path|ssl_insecure|action")


def agent_dir() -> Path:
    return Path(os.environ.get("WHIMBREL_FENCE_AGENT_DIR", "/usr/sbin"))


def lab_namespace(host: str) -> re.Pattern[str]:
    return re.compile(r"wb[a-z0-9]+-" + re.escape(host))


@dataclass(frozen=True)
class Fenced:
    host: str
    agent: str
    proof: str
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        return {"host": self.host, "agent": self.agent, "proof": self.proof, "s": self.seconds}


class FenceAgent(Protocol):
    def off(self, host: str) -> str:
        """Power the host off; return what proves it is off, or raise."""
        ...


def _failed(host: str, agent: str, why: str, detail: str = "") -> HostUnreachable:
    return HostUnreachable(
        "E_FENCE_FAILED",
        f"fencing host {host} with {agent} failed: {why}",
        "check the agent's options and its path to the host's power controller "
        f"('whimbrel host fence set {host}'); its HA VMs stay down until it is fenced",
        detail,
    )


class LabFence:
    """The lab's power switch: every process in the host's namespace dies."""

    def __init__(self, namespace: str) -> None:
        self.namespace = namespace

    def off(self, host: str) -> str:
        if not netns.netns_exists(self.namespace):
            raise _failed(host, "lab", f"no namespace {self.namespace}")
        killed = netns.netns_pids(self.namespace)
        for pid in killed:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        deadline = time.monotonic() + 10
        while (left := netns.netns_pids(self.namespace)) and time.monotonic() < deadline:
            time.sleep(0.05)
        if left:
            raise _failed(host, "lab", f"processes {left} survived SIGKILL")
        n = len(killed)
        return f"lab agent: SIGKILLed {n} processes in namespace {self.namespace}; none left"


class CommandFence:
    """A fence-agents program: off, then status must answer OFF."""

    def __init__(self, agent: str, options: dict[str, str], timeout_s: float = 60.0) -> None:
        self.agent, self.options, self.timeout_s = agent, options, timeout_s

    def _call(self, host: str, action: str) -> str:
        text = "".join(f"{k}={v}\n" for k, v in {**self.options, "action": action}.items())
        try:
            r = subprocess.run(
                [str(agent_dir() / self.agent)],
                input=text,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise _failed(host, self.agent, f"{action}: {exc}") from exc
        if r.returncode != 0:
            detail = self._redacted(r.stderr[-2000:] + r.stdout[-500:])
            raise _failed(host, self.agent, f"{action} exited {r.returncode}", detail)
        return self._redacted(r.stdout.strip())

    def _redacted(self, text: str) -> str:
        """An agent's output without its secrets: some echo the command they ran (ipmitool
        -P PASSWORD), and the output goes into the job and the log."""
        for name, value in self.options.items():
            if is_secret(name) and value:
                text = text.replace(value, "***")
        return text

    def off(self, host: str) -> str:
        self._call(host, "off")
        status = self._call(host, "status")
        if "OFF" not in status.upper():
            raise _failed(host, self.agent, f"status after off says {status!r}")
        return f"{self.agent}: off, status {status!r}"


def check_config(host: str, config: dict[str, Any]) -> None:
    """Refuse an agent that cannot work here, or options it does not document, before it
    is needed."""
    agent = str(config.get("agent", ""))
    options = config.get("options", {})
    if not isinstance(options, dict):
        raise InvalidInput("E_FENCE_INVALID", "fence options must be name=value pairs", "")
    if agent == "lab":
        ns = str(options.get("namespace", ""))
        if set(options) != {"namespace"} or not lab_namespace(host).fullmatch(ns):
            raise InvalidInput(
                "E_FENCE_INVALID",
                f"the lab agent of host {host} takes one option, the namespace of that lab "
                f"host (wbLAB-{host}); given {sorted(options)} {ns!r}",
                "'whimbrel lab up' sets it for you; the lab agent is for lab hosts only",
            )
        return
    if not AGENT_NAME.fullmatch(agent):
        raise InvalidInput(
            "E_FENCE_INVALID",
            f"{agent!r} is not a fence agent",
            "use 'lab' or an agent of the fence-agents package, such as fence_ipmilan",
        )
    program = agent_dir() / agent
    if not os.access(program, os.X_OK):
        raise InvalidInput(
            "E_FENCE_AGENT_MISSING",
            f"fence agent {agent} is not installed in {agent_dir()} on the manager's machine",
            "install Debian's fence-agents package (apt install fence-agents)",
        )
    documented = _documented(program)
    for name in options:
        if REFUSED_OPTION.fullmatch(str(name)) or str(name) not in documented:
            raise InvalidInput(
                "E_FENCE_OPTION_REFUSED",
                f"{agent} option {name!r} is refused: "
                + (
                    "it names a program to run or weakens a check"
                    if REFUSED_OPTION.fullmatch(str(name))
                    else "the agent does not document it"
                ),
                f"use the options '{agent} -o metadata' lists, such as ip, username, password",
            )


def _documented(program: Path) -> set[str]:
    """The parameter names of the agent's own metadata (``-o metadata``, XML)."""
    try:
        r = subprocess.run(
            [str(program), "-o", "metadata"], capture_output=True, text=True, timeout=30
        )
        root = ET.fromstring(r.stdout)
    except (OSError, subprocess.TimeoutExpired, ET.ParseError) as exc:
        raise InvalidInput(
            "E_FENCE_AGENT_MISSING",
            f"fence agent {program.name} gave no metadata ({exc})",
            "reinstall Debian's fence-agents package",
        ) from exc
    return {p.get("name", "") for p in root.iter("parameter")} - {""}


def agent_for(config: dict[str, Any]) -> FenceAgent | None:
    """The agent a host's fence settings name; None when it has none."""
    agent = str(config.get("agent", ""))
    options = {str(k): str(v) for k, v in dict(config.get("options", {})).items()}
    if not agent:
        return None
    if agent == "lab":
        return LabFence(options["namespace"])
    return CommandFence(agent, options)


def fence(host: str, config: dict[str, Any]) -> Fenced:
    if config.get("agent"):
        check_config(host, config)  # settings stored before a rule existed obey it too
    agent = agent_for(config)
    if agent is None:
        raise HostUnreachable(
            "E_FENCE_UNAVAILABLE",
            f"host {host} is lost and has no fence agent: it is not proven dead, so its HA VMs "
            "are not restarted elsewhere (they could run twice)",
            f"configure one with 'whimbrel host fence set {host} --agent fence_ipmilan "
            "--option ip=... --option username=... --secret-file password=FILE', or power the host "
            f"off and run 'whimbrel host fence confirm {host}'",
        )
    t0 = time.monotonic()
    proof = agent.off(host)
    return Fenced(host, str(config["agent"]), proof, round(time.monotonic() - t0, 3))
