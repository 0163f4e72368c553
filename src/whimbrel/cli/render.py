"""Tables for people, JSON for scripts."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from rich.console import Console
from rich.table import Table


def emit_json(console: Console, data: Any) -> None:
    console.print_json(json.dumps(data, default=str))


def table(console: Console, title: str, cols: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    t = Table(title=title, title_justify="left", header_style="bold")
    first = max((len(str(r[0])) for r in rows), default=0)
    for i, c in enumerate(cols):
        # The first column names the object: never cut it, wrap the others instead.
        t.add_column(c, no_wrap=i == 0, min_width=max(first, len(c)) if i == 0 else None)
    for r in rows:
        t.add_row(*("" if v is None else str(v) for v in r))
    console.print(t)


def fields(console: Console, title: str, data: dict[str, Any]) -> None:
    t = Table(title=title, title_justify="left", show_header=False, box=None)
    t.add_column(style="bold")
    t.add_column()
    for k, v in data.items():
        if isinstance(v, list) and all(isinstance(x, str) for x in v):
            v = ", ".join(v)
        elif isinstance(v, list | dict):
            v = json.dumps(v)
        t.add_row(k, "" if v is None else str(v))
    console.print(t)


def mib(v: int) -> str:
    return f"{v / 1024:.1f} GiB" if v >= 10240 else f"{v} MiB"


def heartbeat_text(hb: dict[str, Any] | None) -> str:
    if not hb:
        return "-"
    text = f"HB {hb['counter']} (up {hb['uptime_s']:.0f}s)"
    if hb.get("disk_seq", -1) >= 0:
        text += f" disk {hb['disk_seq']}"
    if hb.get("bad"):
        text += f" BAD {hb['bad']}"
    return text
