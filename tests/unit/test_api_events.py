"""The change feed and its event stream: what changed, for whom, and for how long."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from tests.conftest import Api
from tests.unit.conftest import as_user
from tests.unit.test_api_vms import _vm
from whimbrel.api import events, feed
from whimbrel.api.feed import ChangeFeed


def _by_type(evs: list[dict[str, Any]]) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {}
    for ev in evs:
        out.setdefault(ev["type"], []).append(ev["data"])
    return out


def test_the_feed_sends_what_changed_since_its_last_read(two: Api) -> None:
    feed = ChangeFeed(two.manager.sessions)
    assert feed.read(first=True) == []  # the baseline: the listener read the lists
    assert feed.read() == []  # nothing changed: nothing sent
    two.ok("POST", "/vms", _vm("v2", "f2"))
    got = _by_type(feed.read())
    assert [v["name"] for v in got["vm"]] == ["v2"]
    assert got["vm"][0]["host"] == "f2" and got["vm"][0]["cluster"] == "c1"
    assert [(h["name"], h["vms"]) for h in got["host"]] == [("f2", 1)]
    assert [(c["name"], c["vms"]) for c in got["cluster"]] == [("c1", 2)]
    assert [(j["kind"], j["state"]) for j in got["job"]] == [("vm.create", "Completed")]

    two.ok("POST", "/vms/v2/migrate", {"to": "f3"})
    got = _by_type(feed.read())
    assert [(v["name"], v["host"]) for v in got["vm"]] == [("v2", "f3")]
    assert got["job"][-1]["kind"] == "vm.migrate" and got["job"][-1]["state"] == "Completed"
    assert got["job"][-1]["progress"]["result"]["total_ms"] >= 0  # the move's figures

    two.ok("DELETE", "/vms/v2", params={"force": True})
    gone = _by_type(feed.read())["gone"]
    assert gone == [{"kind": "vm", "name": "v2"}]


def _stream(api: Api) -> Iterator[tuple[str, Any]]:
    """The events of one stream, as (type, data), read as they come."""
    with api.http.stream("GET", "/api/v1/events") as resp:
        assert resp.status_code == 200
        assert resp.headers["content-type"].startswith("text/event-stream")
        kind = ""
        for line in resp.iter_lines():
            if line.startswith("event: "):
                kind = line[7:]
            elif line.startswith("data: "):
                yield kind, json.loads(line[6:])


def _until(stream: Iterator[tuple[str, Any]], want: str, name: str) -> list[tuple[str, Any]]:
    seen = []
    for kind, data in stream:
        seen.append((kind, data))
        if kind == want and data.get("name", data.get("subject")) == name:
            return seen
    raise AssertionError(f"the stream ended before a {want} of {name}: {seen}")


def test_a_stream_carries_changes_in_its_users_scope_only(two: Api) -> None:
    scoped = as_user(two, "cleo", "read-only", "c2")
    mine, theirs = _stream(two), _stream(scoped)
    assert next(mine)[0] == "hello" and next(theirs) == ("hello", {"user": "cleo"})
    # The feed starts with its first listener; the change must come after its baseline.
    done = threading.Event()

    def change() -> None:
        done.wait(0.6)
        two.ok("POST", "/vms", _vm("v2", "f2"))
        two.ok("POST", "/vms", _vm("w2", "g1", disks=[]))

    t = threading.Thread(target=change)
    t.start()
    try:
        seen = _until(mine, "vm", "w2")
        assert any(k == "vm" and d["name"] == "v2" for k, d in seen)
        other = _until(theirs, "vm", "w2")
        names = {d.get("name", d.get("subject")) for _k, d in other}
        assert "v2" not in names and "f2" not in names and "c1" not in names  # not in c2
    finally:
        t.join()


def test_a_stream_ends_when_its_token_is_revoked(two: Api, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(events, "RECHECK_S", 0.0)
    monkeypatch.setattr(events, "KEEPALIVE_S", 0.2)
    op = as_user(two, "otto", "operator")
    stream = _stream(op)
    assert next(stream)[0] == "hello"
    me = op.call("GET", "/whoami").json()
    assert two.call("DELETE", f"/tokens/{me['token']}").status_code == 200
    rest = list(stream)  # the stream ends by itself
    assert rest[-1][0] == "denied" and rest[-1][1]["code"] == "E_AUTH_TOKEN_REVOKED"


def test_a_listener_that_falls_behind_is_told_to_read_again(
    two: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(feed, "QUEUE_MAX", 4)

    async def go() -> list[str]:
        f = ChangeFeed(two.manager.sessions)
        lst = f.subscribe(None, "admin")
        f.stop()
        many = [{"type": "vm", "cluster": "c1", "data": {"name": f"v{i}"}} for i in range(9)]
        lst.offer(many)
        return [lst.queue.get_nowait()["type"] for _ in range(lst.queue.qsize())]

    # A loop of its own, in a thread: the test may run where a loop already runs.
    with ThreadPoolExecutor(1) as pool:
        kinds = pool.submit(asyncio.run, go()).result()
    assert kinds == ["reset"]  # what it held is dropped: it reads the lists
