"""What checking a request's user costs: the API guard's token check, per request.

Measured in process on a store of its own (SQLite by default, PostgreSQL by
``--db-url``), with 1,000 users and 5,000 tokens in it:

- the guard's whole added work on an authenticated request against the same request
  on an open path, through the same middleware and the same no-op application: for a
  token checked in the last 2 s (what a client making requests mostly sends: no store
  read, no worker thread), and for one read from the store (in a worker thread);
- the store check alone, against the floor of one indexed row read by raw SQL on the
  same store.

The goal: under 1 ms added per request at p95.

    .venv/bin/python bench/auth.py [--requests 3000] [--db-url URL]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from sqlalchemy import text

from whimbrel.access.tokens import digest, issue
from whimbrel.access.users import add_user, grant
from whimbrel.api.guard import RequestGuard
from whimbrel.config import Settings
from whimbrel.drivers.fake import FakeFleet
from whimbrel.manager import Manager


def pct(xs: list[float], p: float) -> float:
    return sorted(xs)[min(len(xs) - 1, int(p * len(xs)))]


def timed(fn: Callable[[], Any], n: int) -> list[float]:
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


async def app(_scope: Any, _receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"{}"})


async def request(guard: RequestGuard, path: str, token: str) -> None:
    scope = {
        "type": "http",
        "method": "GET",
        "path": path,
        "headers": [(b"authorization", f"Bearer {token}".encode())],
        "client": ("127.0.0.1", 5000),
    }

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(_message: dict[str, Any]) -> None:
        return None

    await guard(scope, receive, send)


async def requests(guard: RequestGuard, path: str, token: str, n: int) -> list[float]:
    """``n`` requests in one event loop, as uvicorn serves them."""
    out = []
    for _ in range(n):
        t0 = time.perf_counter()
        await request(guard, path, token)
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--requests", type=int, default=3000)
    ap.add_argument("--db-url", default="")
    args = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="whimbrel-bench-auth-"))
    settings = Settings(home, args.db_url or f"sqlite:///{home / 'w.db'}", "http://bench")
    manager = Manager(settings, opener=FakeFleet().open)
    with manager.sessions.begin() as s:
        for i in range(1000):
            u = add_user(s, f"user{i}", realm="ldap")
            grant(s, u.name, "operator", "")
            for k in range(5):
                _row, secret = issue(s, u, f"t{k}", None)
    token = secret  # the last user's last token

    def noaudit(*_a: Any) -> None:
        return None

    guard = RequestGuard(app, manager.authenticate, noaudit, fresh=manager.recently_verified)
    n = args.requests
    for path in ("/api/v1/health", "/api/v1/vms"):  # warm both
        asyncio.run(requests(guard, path, token, 50))
    open_ms = asyncio.run(requests(guard, "/api/v1/health", token, n))
    warm_ms = asyncio.run(requests(guard, "/api/v1/vms", token, n))
    manager._verified.fresh_s = 0.0  # every request reads the store
    auth_ms = asyncio.run(requests(guard, "/api/v1/vms", token, n))
    check_ms = timed(lambda: manager.authenticate(token), n)
    d = digest(token)
    engine = manager.sessions.kw["bind"]
    with engine.connect() as c:
        raw_ms = timed(
            lambda: c.execute(
                text("SELECT user_id FROM api_tokens WHERE digest = :d"), {"d": d}
            ).one(),
            n,
        )
    warm50 = pct(warm_ms, 0.5) - pct(open_ms, 0.5)
    warm95 = pct(warm_ms, 0.95) - pct(open_ms, 0.95)
    extra50 = pct(auth_ms, 0.5) - pct(open_ms, 0.5)
    extra95 = pct(auth_ms, 0.95) - pct(open_ms, 0.95)
    store = "PostgreSQL" if settings.db_url.startswith("postgresql") else "SQLite"
    print(f"token check on {store}, 1,000 users / 5,000 tokens, {n} requests each")
    print(f"{'':34} {'p50 ms':>8} {'p95 ms':>8}")
    print(f"{'request on an open path':34} {pct(open_ms, 0.5):8.3f} {pct(open_ms, 0.95):8.3f}")
    print(f"{'token checked < 2 s ago':34} {pct(warm_ms, 0.5):8.3f} {pct(warm_ms, 0.95):8.3f}")
    print(f"{'  added by the check':34} {warm50:8.3f} {warm95:8.3f}")
    print(f"{'token read from the store':34} {pct(auth_ms, 0.5):8.3f} {pct(auth_ms, 0.95):8.3f}")
    print(f"{'  added by the check':34} {extra50:8.3f} {extra95:8.3f}")
    print(f"{'store check alone':34} {pct(check_ms, 0.5):8.3f} {pct(check_ms, 0.95):8.3f}")
    print(f"{'raw indexed read (floor)':34} {pct(raw_ms, 0.5):8.3f} {pct(raw_ms, 0.95):8.3f}")
    ratio = statistics.median(check_ms) / statistics.median(raw_ms)
    print(f"store check / raw read: {ratio:.1f}x; goal < 1 ms added at p95: "
          f"{'met' if warm95 < 1.0 else 'MISSED'} for a token checked < 2 s ago, "
          f"{'met' if extra95 < 1.0 else 'MISSED'} for a store read")  # fmt: skip
    manager.stop()


if __name__ == "__main__":
    main()
