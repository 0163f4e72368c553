"""Fixtures shared by every suite: settings on a temporary store, the fake fleet,
an in-process manager, and the API client."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from whimbrel.api.app import create_app
from whimbrel.config import Settings
from whimbrel.drivers.fake import FakeFleet
from whimbrel.manager import Manager

FINAL = {"Completed", "Terminated", "Killed", "Exception"}


def make_settings(root: Path) -> Settings:
    return Settings(home=root / "home", db_url=f"sqlite:///{root}/whimbrel.db",
                    api_url="http://testserver")


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest.fixture
def fleet() -> FakeFleet:
    fleet = FakeFleet.reset_default()
    for name in ("f1", "f2", "f3"):
        fleet.add_host(name, memory_mib=4096, pools={"local": f"/srv/{name}", "csv": "/srv/csv"})
    return fleet


@pytest.fixture
def manager(settings: Settings, fleet: FakeFleet) -> Iterator[Manager]:
    m = Manager(settings, opener=fleet.open)
    m.start()
    yield m
    m.stop()


class Api:
    """The REST API in process, with helpers that submit and wait for jobs."""

    def __init__(self, manager: Manager):
        self.manager = manager
        self.http = TestClient(
            create_app(manager, start_runner=False),
            headers={"Authorization": f"Bearer {manager.token}"},
        )

    def call(self, method: str, path: str, **kw: Any) -> Any:
        return self.http.request(method, "/api/v1" + path, **kw)

    def job(self, method: str, path: str, json: Any = None, **kw: Any) -> dict[str, Any]:
        """Submit and wait; return the finished job (with steps)."""
        resp = self.call(method, path, json=json, **kw)
        assert resp.status_code == 202, resp.text
        job_id = resp.json()["id"]
        self.manager.runner.wait(job_id, timeout=180)
        return dict(self.call("GET", f"/jobs/{job_id}").json())

    def ok(self, method: str, path: str, json: Any = None, **kw: Any) -> dict[str, Any]:
        job = self.job(method, path, json, **kw)
        assert job["state"] == "Completed", (job["error"], job)
        return job

    def error(self, method: str, path: str, json: Any = None, **kw: Any) -> tuple[int, str]:
        resp = self.call(method, path, json=json, **kw)
        assert resp.status_code >= 400, resp.text
        return resp.status_code, resp.json()["error"]["code"]


@pytest.fixture
def api(manager: Manager) -> Api:
    return Api(manager)
