"""The scheduler's queue scan with a long history: 100,000 finished jobs, 10 queued.

The scan is the runner's own query (every pass, twice a second).  The baseline,
measured in the same run, is the same scan on a store that holds only the 10
queued jobs; the ratio shows what the history costs.  The index on the job
state (migration 0006) is what keeps it near 1; the scan is also timed with
the index dropped, for comparison.

    .venv/bin/python bench/job_queue.py [--jobs 100000]
    .venv/bin/python bench/job_queue.py --db-url postgresql+psycopg://.../a --base-db-url .../b
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

from sqlalchemy import insert, select, text
from sqlalchemy.orm import Session, sessionmaker

from whimbrel.domain.job import JobState
from whimbrel.store.db import open_store
from whimbrel.store.models import Job


def scan(sessions: sessionmaker[Session]) -> float:
    """One queue scan as the scheduler makes it; seconds."""
    t0 = time.perf_counter()
    with sessions() as s:
        rows = s.execute(
            select(Job.id, Job.kind, Job.locks, Job.cancel_requested)
            .where(Job.state == JobState.NEW)
            .order_by(Job.id)
        ).all()
    assert len(rows) == 10
    return time.perf_counter() - t0


def median_scan(sessions: sessionmaker[Session], runs: int = 50) -> float:
    scan(sessions)  # warm
    return statistics.median(scan(sessions) for _ in range(runs))


def fill(sessions: sessionmaker[Session], past: int) -> None:
    old = datetime.now(UTC) - timedelta(days=1)
    done = [
        {
            "kind": "vm.migrate",
            "subject": f"vm{i % 500}",
            "op": {},
            "state": JobState.COMPLETED,
            "locks": [f"vm:vm{i % 500}"],
            "phase": "done",
            "percent": 100,
            "message": "completed",
            "progress": {},
            "rollback": "none",
            "manual_fix": "",
            "cancel_requested": False,
            "result": {},
            "created_at": old,
            "finished_at": old,
        }
        for i in range(past)
    ]
    with sessions.begin() as s:
        for k in range(0, len(done), 5000):
            s.execute(insert(Job), done[k : k + 5000])
        for i in range(10):
            s.add(Job(kind="vm.start", subject=f"q{i}", op={}, state=JobState.NEW, locks=[]))
    if sessions.kw["bind"].dialect.name == "postgresql":  # as autovacuum would, in time
        with sessions.begin() as s:
            s.execute(text("ANALYZE jobs"))


def store(url: str | None, tag: str) -> sessionmaker[Session]:
    if url:
        return open_store(url)
    return open_store(f"sqlite:///{Path(tempfile.mkdtemp(prefix=f'wb-q-{tag}-'))}/w.db")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--jobs", type=int, default=100_000)
    ap.add_argument("--db-url", help="an empty PostgreSQL database (default: SQLite files)")
    ap.add_argument("--base-db-url", help="another empty one, for the baseline")
    args = ap.parse_args()
    base = store(args.base_db_url, "base")
    fill(base, 0)
    full = store(args.db_url, "full")
    t0 = time.perf_counter()
    fill(full, args.jobs)
    filled = time.perf_counter() - t0
    b, f = median_scan(base), median_scan(full)
    with full.begin() as s:
        s.execute(text("DROP INDEX ix_jobs_state"))
    n = median_scan(full)
    print(f"{args.jobs} past jobs written in {filled:.1f} s; queue scan medians of 50:")
    print(f"  10 queued, no history (baseline): {b * 1e3:.3f} ms")
    print(f"  10 queued, {args.jobs} past, indexed: {f * 1e3:.3f} ms = {f / b:.2f}x the baseline")
    print(f"  the same without the index:        {n * 1e3:.3f} ms = {n / b:.2f}x the baseline")


if __name__ == "__main__":
    main()
