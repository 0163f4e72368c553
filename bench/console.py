"""The web console and its event stream at fleet scale: 1,000 hosts / 25,000 VMs.

The store is filled as bench/scale.py fills it (its simulator serves the hosts) and
served by uvicorn in this process.  Each figure is printed against a baseline
measured in the same run:

- first paint of the fleet view in Debian's Chromium (headless, Playwright): from
  the navigation to the tables filled and the stream live, against the same four
  list requests made by a plain HTTP client (the data the page needs, no browser);
- one read of the change feed (every host's and VM's state, what the feed does at
  each pace while anyone listens), against the same columns read by one raw query;
- events delivered per second: bursts of VMs change state in the store, and every
  one of ``--listeners`` streams receives each change, against the rate at which the
  feed reads rows (its floor: a change is sent after the read that sees it).

    .venv/bin/python -u bench/console.py [--hosts 1000 --vms 25000] [--listeners 10]
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import uvicorn
from playwright.sync_api import sync_playwright
from sqlalchemy import text, update

from scale import build  # beside this script
from simulator import SimFleet
from whimbrel.api.app import create_app
from whimbrel.api.feed import ChangeFeed
from whimbrel.config import Settings
from whimbrel.manager import Manager
from whimbrel.store.models import Vm

PORT = 8490


def line(what: str, ours: float, base: float, unit: str = "s") -> None:
    print(f"  {what:<52} {ours:9.4f} {unit}  baseline {base:9.4f} {unit}  {ours / base:7.2f}x")


def serve(m: Manager) -> uvicorn.Server:
    config = uvicorn.Config(create_app(m, start_runner=False), port=PORT, log_level="warning")
    server = uvicorn.Server(config)
    threading.Thread(target=server.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    return server


def first_paint(token: str, runs: int) -> list[float]:
    """Navigation start to the tables filled and the stream live, as the page sees it."""
    out = []
    chromium = shutil.which("chromium") or "/usr/bin/chromium"
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox"])
        for _ in range(runs):
            page = browser.new_page()
            page.goto(f"http://127.0.0.1:{PORT}/#token={token}")
            page.wait_for_selector("#vms tr", timeout=120_000)
            page.wait_for_selector("#hosts tr")
            page.wait_for_selector("#live.live")
            out.append(page.evaluate("performance.now()") / 1000)
            page.close()
        browser.close()
    return out


def lists(token: str, runs: int) -> list[float]:
    out = []
    paths = ["/clusters", "/hosts?limit=200", "/vms?limit=200", "/jobs?limit=25"]
    with httpx.Client(base_url=f"http://127.0.0.1:{PORT}/api/v1") as c:
        c.headers["Authorization"] = f"Bearer {token}"
        for _ in range(runs):
            t0 = time.perf_counter()
            with ThreadPoolExecutor(4) as pool:
                list(pool.map(lambda p: c.get(p).raise_for_status(), paths))
            out.append(time.perf_counter() - t0)
    return out


def feed_read(m: Manager, runs: int) -> tuple[float, float]:
    feed = ChangeFeed(m.sessions)
    feed.read(first=True)
    ours = []
    for _ in range(runs):
        t0 = time.perf_counter()
        feed.read()
        ours.append(time.perf_counter() - t0)
    raw = []
    for _ in range(runs):
        t0 = time.perf_counter()
        with m.sessions() as s:
            s.execute(
                text(
                    "SELECT v.name, v.state, v.memory_mib, v.ha, v.ha_priority, v.findings, "
                    "h.name, c.name FROM vms v LEFT JOIN hosts h ON v.host_id = h.id "
                    "LEFT JOIN clusters c ON h.cluster_id = c.id"
                )
            ).all()
            s.execute(text("SELECT * FROM hosts")).all()
        raw.append(time.perf_counter() - t0)
    return statistics.median(ours), statistics.median(raw)


def delivery(
    m: Manager, token: str, listeners: int, changes: int, bursts: int
) -> tuple[float, int]:
    """``bursts`` times, ``changes`` VMs change state in one commit; the seconds from each
    commit to every stream having received all of it, summed; and the events received.
    A burst is kept under a stream's queue (QUEUE_MAX): a larger one is a reset."""
    got = [0] * listeners
    seen = threading.Condition()
    reset = threading.Event()

    def listen(i: int) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        url = f"http://127.0.0.1:{PORT}/api/v1/events"
        with httpx.stream("GET", url, headers=headers, timeout=None) as r:
            kind = ""
            for ln in r.iter_lines():
                if ln.startswith("event: "):
                    kind = ln[7:]
                    if kind == "reset":
                        reset.set()
                elif ln.startswith("data: ") and kind in ("vm", "hello"):
                    with seen:
                        got[i] += 1
                        seen.notify_all()
                if got[i] > changes * bursts:
                    return

    for i in range(listeners):
        threading.Thread(target=listen, args=(i,), daemon=True).start()
    with seen:
        seen.wait_for(lambda: all(got), timeout=30)  # every stream said hello
    time.sleep(2)  # the feed's baseline read, which sends nothing
    took = 0.0
    for b in range(bursts):
        names = [f"vm{j:06d}" for j in range(changes)]
        state = "paused" if b % 2 == 0 else "running"
        t0 = time.perf_counter()
        with m.sessions.begin() as s:
            s.execute(update(Vm).where(Vm.name.in_(names)).values(state=state))
        want = 1 + changes * (b + 1)

        def arrived(want: int = want) -> bool:
            return min(got) >= want or reset.is_set()

        with seen:
            ok = seen.wait_for(arrived, timeout=120)
        if not ok or reset.is_set():
            raise SystemExit(f"burst {b}: the streams did not get every change (reset or lost)")
        took += time.perf_counter() - t0
    return took, sum(got) - listeners


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--hosts", type=int, default=1000)
    ap.add_argument("--vms", type=int, default=25000)
    ap.add_argument("--listeners", type=int, default=10)
    ap.add_argument("--changes", type=int, default=1000)
    ap.add_argument("--bursts", type=int, default=5)
    ap.add_argument("--runs", type=int, default=5)
    a = ap.parse_args()
    home = Path(tempfile.mkdtemp(prefix="whimbrel-console-"))
    sim = SimFleet(1.0)
    url = f"sqlite:///{home / 'whimbrel.db'}"
    m = Manager(Settings(home, url, "http://bench"), opener=sim.open)
    build(m, sim, a.hosts, a.vms)
    print(f"{a.hosts} hosts, {a.vms} VMs, store sqlite; {a.listeners} listeners")
    m.start()
    m.monitor.stop_loop()  # the store alone changes: no simulated host is polled
    server = serve(m)
    try:
        lists(m.token, 2)  # warm
        paint, base = first_paint(m.token, a.runs), lists(m.token, a.runs)
        med = statistics.median
        line("first paint of the fleet view, p50", med(paint), med(base))
        line("first paint of the fleet view, worst", max(paint), max(base))
        ours, raw = feed_read(m, a.runs)
        line(f"one read of the change feed, {a.vms} VMs", ours, raw)
        feed_rate = a.vms / ours
        took, n = delivery(m, m.token, a.listeners, a.changes, a.bursts)
        rate = n / took
        print(
            f"  {a.bursts} x {a.changes} VM changes to {a.listeners} streams: {n} events in "
            f"{took:.2f} s = {rate:,.0f} events/s, {took / a.bursts:.2f} s a burst; the feed "
            f"reads {feed_rate:,.0f} rows/s ({rate / feed_rate:.2f}x)"
        )
    finally:
        server.should_exit = True
        m.stop()


if __name__ == "__main__":
    main()
