"""Hosts and clusters through the REST API, and bad input that must change nothing."""

from __future__ import annotations

from tests.conftest import Api
from whimbrel.drivers.fake import FakeFleet


def _hosts(api: Api) -> list[str]:
    return [h["name"] for h in api.call("GET", "/hosts").json()]


def test_add_host_reads_its_inventory(api: Api) -> None:
    api.ok("POST", "/clusters", {"name": "c1", "shared_paths": ["/srv/csv"]})
    api.ok("POST", "/hosts", {"name": "f1", "uri": "fake://f1", "cluster": "c1"})
    h = api.call("GET", "/hosts/f1").json()
    assert h["cluster"] == "c1" and h["memory_mib"] == 4096 and h["virt_type"] == "kvm"
    assert {p["name"] for p in h["pools"]} == {"local", "csv"}
    assert h["migration"]["max_live_migrations"] == 2
    assert h["migration"]["performance"] == "compression"
    assert api.call("GET", "/clusters/c1").json()["hosts"] == ["f1"]


def test_unknown_names_get_not_found_codes(api: Api) -> None:
    assert api.error("GET", "/hosts/nope") == (404, "E_HOST_NOT_FOUND")
    assert api.error("GET", "/vms/nope") == (404, "E_VM_NOT_FOUND")
    assert api.error("GET", "/clusters/nope") == (404, "E_CLUSTER_NOT_FOUND")
    assert api.error("GET", "/jobs/999") == (404, "E_JOB_NOT_FOUND")
    assert api.error("POST", "/hosts/nope/refresh") == (404, "E_HOST_NOT_FOUND")
    assert api.error("POST", "/vms/nope/start") == (404, "E_VM_NOT_FOUND")
    assert api.error("POST", "/hosts", {"name": "f1", "uri": "fake://f1", "cluster": "nope"}) == (
        404,
        "E_CLUSTER_NOT_FOUND",
    )
    assert _hosts(api) == []


def test_duplicates_are_refused_and_change_nothing(api: Api) -> None:
    api.ok("POST", "/hosts", {"name": "f1", "uri": "fake://f1"})
    api.ok("POST", "/clusters", {"name": "c1"})
    assert api.error("POST", "/hosts", {"name": "f1", "uri": "fake://f2"}) == (409, "E_HOST_EXISTS")
    assert api.error("POST", "/hosts", {"name": "other", "uri": "fake://f1"}) == (
        409,
        "E_HOST_URI_EXISTS",
    )
    assert api.error("POST", "/clusters", {"name": "c1"}) == (409, "E_CLUSTER_EXISTS")
    assert _hosts(api) == ["f1"]
    assert api.call("GET", "/hosts/f1").json()["uri"] == "fake://f1"


def test_bad_names_and_uris(api: Api) -> None:
    assert api.error("POST", "/hosts", {"name": "a b", "uri": "fake://f1"}) == (
        400,
        "E_INVALID_HOST_NAME",
    )
    assert api.error("POST", "/hosts", {"name": "x", "uri": "ftp://x"}) == (
        400,
        "E_INVALID_HOST_URI",
    )
    assert api.error("POST", "/hosts", {"name": 3}) == (400, "E_INVALID_REQUEST")
    assert api.error("POST", "/clusters", {"name": "c", "reserve": -1}) == (
        400,
        "E_INVALID_RESERVE",
    )
    assert _hosts(api) == []


def test_host_that_does_not_answer_leaves_no_trace(api: Api, fleet: FakeFleet) -> None:
    fleet.hosts["f2"].up = False
    job = api.job("POST", "/hosts", {"name": "f2", "uri": "fake://f2"})
    assert job["state"] == "Exception"
    assert job["error"]["code"] == "E_HOST_UNREACHABLE"
    assert job["error"]["fix"]
    assert job["rollback"] == "clean"
    assert _hosts(api) == []


def test_invalid_token_is_refused(api: Api) -> None:
    for headers in ({"Authorization": "Bearer wrong"}, {"Authorization": ""}):
        resp = api.http.get("/api/v1/hosts", headers=headers)
        assert resp.status_code == 401
        assert resp.json()["error"]["code"] == "E_AUTH_TOKEN"
    resp = api.http.post("/api/v1/clusters", json={"name": "c"}, headers={"Authorization": "x"})
    assert resp.status_code == 401
    assert api.call("GET", "/clusters").json() == []
    assert api.http.get("/api/v1/health").status_code == 200  # the only open route


def test_cluster_membership(api: Api) -> None:
    api.ok("POST", "/clusters", {"name": "c1"})
    api.ok("POST", "/clusters", {"name": "c2"})
    api.ok("POST", "/hosts", {"name": "f1", "uri": "fake://f1"})
    api.ok("POST", "/clusters/c1/hosts", {"host": "f1"})
    assert api.error("POST", "/clusters/c2/hosts", {"host": "f1"}) == (409, "E_HOST_IN_CLUSTER")
    assert api.error("DELETE", "/clusters/c2/hosts/f1") == (400, "E_HOST_NOT_IN_CLUSTER")
    assert api.error("DELETE", "/clusters/c1") == (409, "E_CLUSTER_HAS_HOSTS")
    api.ok("DELETE", "/clusters/c1/hosts/f1")
    api.ok("DELETE", "/clusters/c1")
    assert [c["name"] for c in api.call("GET", "/clusters").json()] == ["c2"]


def test_refresh_and_remove(api: Api, fleet: FakeFleet) -> None:
    api.ok("POST", "/hosts", {"name": "f1", "uri": "fake://f1"})
    fleet.hosts["f1"].networks = ("vm-net", "storage-net")
    api.ok("POST", "/hosts/f1/refresh")
    assert {n["name"] for n in api.call("GET", "/hosts/f1").json()["networks"]} == {
        "vm-net",
        "storage-net",
    }
    api.ok("DELETE", "/hosts/f1")
    assert _hosts(api) == []


def test_web_console_is_served_and_reads_the_api(api: Api) -> None:
    page = api.http.get("/", headers={"Authorization": ""})
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    text = page.text
    for name in ("main.js", "api.js", "fleet.js", "actions.js", "pages.js", "console.css"):
        asset = api.http.get(f"/console/{name}", headers={"Authorization": ""})
        assert asset.status_code == 200, name
        text += asset.text
    assert api.http.get("/console/__init__.py").status_code == 404  # nothing else is served
    assert api.http.get("/console/..%2F__init__.py").status_code == 404
    for needle in (
        '"/api/v1"',
        "/hosts",
        "/vms",
        "/jobs",
        "Bearer",
        "percent",
        "#token=",
        "/login",
        "/whoami",
        "whimbrel-signed-in",
        "/events",
        "/check",
        "/maintenance/plan",
        "/placement",
        "/fence/confirm",
    ):
        assert needle in text, needle
