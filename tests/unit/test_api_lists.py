"""The fleet's lists a page at a time: cursors, filters, heartbeats only when asked."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.conftest import Api
from whimbrel.api.app import create_app


def _vm(name: str, host: str) -> dict[str, object]:
    return {
        "name": name,
        "host": host,
        "memory_mib": 128,
        "disks": [{"size_mib": 8, "pool": "csv"}],
    }


def test_pages_follow_the_cursor_and_filters_narrow_them(hosts: Api) -> None:
    api = hosts
    for i in range(5):
        api.ok("POST", "/vms", _vm(f"p{i}", "f1" if i < 3 else "f2"))
    seen, cursor, pages = [], "", 0
    while True:
        r = api.call("GET", "/vms", params={"limit": 2, "cursor": cursor})
        assert r.status_code == 200
        seen += [v["name"] for v in r.json()]
        pages += 1
        cursor = r.headers.get("X-Next-Cursor", "")
        if not cursor:
            assert "Link" not in r.headers
            break
        assert 'rel="next"' in r.headers["Link"]
    assert (seen, pages) == ([f"p{i}" for i in range(5)], 3)
    on_f2 = api.call("GET", "/vms", params={"host": "f2"}).json()
    assert [v["name"] for v in on_f2] == ["p3", "p4"]
    assert all("heartbeat" not in v for v in on_f2)  # not read unless asked
    in_c1 = api.call("GET", "/vms", params={"cluster": "c1", "state": "running"}).json()
    assert len(in_c1) == 5
    assert api.call("GET", "/vms", params={"cluster": "nope"}).json() == []
    beats = api.call("GET", "/vms", params={"heartbeat": True, "host": "f1"}).json()
    assert all(v["heartbeat"]["counter"] >= 0 for v in beats)
    hosts_page = api.call("GET", "/hosts", params={"limit": 2})
    assert [h["name"] for h in hosts_page.json()] == ["f1", "f2"]
    assert hosts_page.headers["X-Next-Cursor"] == "f2"
    jobs = api.call("GET", "/jobs", params={"limit": 3, "kind": "vm.create"})
    older = api.call("GET", "/jobs", params={"limit": 3, "cursor": jobs.headers["X-Next-Cursor"]})
    assert len(jobs.json()) == 3 and all(j["id"] < jobs.json()[-1]["id"] for j in older.json())


def test_a_page_too_large_is_refused_and_changes_nothing(hosts: Api) -> None:
    api = hosts
    assert api.error("GET", "/vms", params={"limit": 0}) == (400, "E_INVALID_LIMIT")
    assert api.error("GET", "/vms", params={"limit": 5001}) == (400, "E_INVALID_LIMIT")
    assert api.error("GET", "/vms", params={"heartbeat": True, "limit": 201}) == (
        400,
        "E_INVALID_LIMIT",
    )
    assert api.error("GET", "/jobs", params={"cursor": "x"}) == (400, "E_INVALID_CURSOR")


def test_the_managers_list_shows_this_replica_leading(hosts: Api) -> None:
    rows = hosts.call("GET", "/managers").json()
    me = hosts.call("GET", "/replica").json()
    assert [r["state"] for r in rows if r["name"] == me["name"]] == ["leader"]
    assert me["leader"] and me["holding"] and me["epoch"] >= 1
    health = hosts.call("GET", "/health").json()
    assert health["leader"] is True and health["replica"] == me["name"]


def test_the_replica_and_health_answer_with_every_api_worker_stuck_on_the_store(
    hosts: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A store frozen under a burst of reads holds every worker thread the API has: what
    this replica knows of itself is answered from memory, in the event loop."""
    m = hosts.manager
    frozen = threading.Event()
    sessions = m.sessions

    def stuck(*args: Any, **kw: Any) -> Any:
        frozen.wait(30)
        return sessions(*args, **kw)

    token = {"Authorization": f"Bearer {m.token}"}
    # One event loop for every request, as under uvicorn (and so one pool of 40 workers).
    with TestClient(create_app(m, start_runner=False), headers=token) as client:
        monkeypatch.setattr(m, "sessions", stuck)
        burst = ThreadPoolExecutor(60)
        reads = [burst.submit(client.get, "/api/v1/vms") for _ in range(60)]
        try:
            time.sleep(1)
            t0 = time.monotonic()
            me = client.get("/api/v1/replica")
            health = client.get("/api/v1/health")
            answered = time.monotonic() - t0
            assert not any(r.done() for r in reads)  # still stuck on the store
        finally:
            frozen.set()
        assert all(r.result(timeout=60).status_code == 200 for r in reads)
        burst.shutdown()
    assert me.status_code == 200 and me.json()["leader"]
    assert health.json()["replica"] == me.json()["name"]
    assert answered < 2, answered
