"""Fence agents run only from the fence-agents directory, with only the options their own
metadata documents, never one that names a program or weakens TLS; the lab agent only for
that lab host's own namespace.  Each refusal is coded and stores nothing."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.conftest import Api
from whimbrel.ha.fence import fence

REFUSED = [
    ({"agent": "fence_test", "options": {"ipmitool_path": "/tmp/x"}}, "E_FENCE_OPTION_REFUSED"),
    ({"agent": "fence_test", "options": {"ssl_insecure": "1"}}, "E_FENCE_OPTION_REFUSED"),
    ({"agent": "fence_test", "options": {"action": "on"}}, "E_FENCE_OPTION_REFUSED"),
    ({"agent": "fence_test", "options": {"sudo_path": "/tmp/x"}}, "E_FENCE_OPTION_REFUSED"),
    ({"agent": "fence_test", "options": {"invented": "1"}}, "E_FENCE_OPTION_REFUSED"),
    ({"agent": "fence_../../tmp/x"}, "E_FENCE_INVALID"),
    ({"agent": "fence_nosuchagent"}, "E_FENCE_AGENT_MISSING"),
    ({"agent": "lab", "options": {"namespace": "wbt-f2"}}, "E_FENCE_INVALID"),  # another host's
    ({"agent": "lab", "options": {"namespace": "init"}}, "E_FENCE_INVALID"),
    ({"agent": "lab", "options": {"namespace": "wbt-f1", "x": "1"}}, "E_FENCE_INVALID"),
]


@pytest.mark.parametrize("body,code", REFUSED, ids=[f"{b} {c}" for b, c in REFUSED])
def test_refused_and_nothing_stored(
    hosts: Api, agents: Path, body: dict[str, object], code: str
) -> None:
    assert hosts.error("POST", "/hosts/f1/fence", body) == (400, code)
    assert hosts.call("GET", "/hosts/f1/fence").json() == {"agent": "", "options": {}}


def test_documented_options_run_from_the_agent_directory_on_stdin(hosts: Api, agents: Path) -> None:
    opts = {"ip": "10.0.0.9", "username": "admin", "password": "s3cret"}
    hosts.ok("POST", "/hosts/f1/fence", {"agent": "fence_test", "options": opts})
    done = fence("f1", {"agent": "fence_test", "options": opts})
    assert "OFF" in done.proof
    calls = (agents.parent / "calls.log").read_text()
    assert "password=s3cret\naction=off\n" in calls and "action=status" in calls


def test_settings_stored_before_the_rule_are_refused_at_fence_time(agents: Path) -> None:
    with pytest.raises(Exception) as info:
        fence("f1", {"agent": "fence_test", "options": {"ipmitool_path": "/tmp/x"}})
    assert getattr(info.value, "code", "") == "E_FENCE_OPTION_REFUSED"
    assert not (agents.parent / "calls.log").exists()
