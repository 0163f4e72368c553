"""``GET /api/v1/events``: the fleet's changes as server-sent events.

One stream per console tab instead of a poll of every list: the change feed
(api/feed.py) reads the store once for all listeners and each stream gets what
its user's scope shows.  The stream checks its token again every ``RECHECK_S``,
so a revoked token stops receiving within that time, and sends a comment line
every ``KEEPALIVE_S`` so proxies and clients see a live connection.

    curl -N -H "Authorization: Bearer $(cat ~/.config/whimbrel/token)" \\
         http://127.0.0.1:8470/api/v1/events
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator

from anyio import to_thread
from fastapi import FastAPI, Request
from fastapi.params import Depends
from fastapi.responses import StreamingResponse

from whimbrel.access import request as access
from whimbrel.api.feed import ChangeFeed, Event
from whimbrel.errors import WhimbrelError
from whimbrel.manager import Manager

KEEPALIVE_S = 15.0
RECHECK_S = 30.0
BATCH = 500  # events written in one chunk when many wait


def frame(ev: Event) -> str:
    return f"event: {ev['type']}\ndata: {json.dumps(ev['data'], separators=(',', ':'))}\n\n"


def add_routes(app: FastAPI, manager: Manager, feed: ChangeFeed, deps: list[Depends]) -> None:
    @app.get("/api/v1/events", dependencies=deps)
    async def events(request: Request) -> StreamingResponse:
        who = access.principal()
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip() if scheme.lower() == "bearer" else ""
        listener = feed.subscribe(who.seen, who.user)

        async def stream() -> AsyncIterator[str]:
            checked = time.monotonic()
            try:
                yield f"retry: 2000\nevent: hello\ndata: {json.dumps({'user': who.user})}\n\n"
                while True:
                    try:
                        ev = await asyncio.wait_for(listener.queue.get(), KEEPALIVE_S)
                    except TimeoutError:
                        yield ": keep-alive\n\n"
                    else:
                        chunk = [frame(ev)]
                        while not listener.queue.empty() and len(chunk) < BATCH:
                            chunk.append(frame(listener.queue.get_nowait()))
                        yield "".join(chunk)
                    if time.monotonic() - checked > RECHECK_S:
                        checked = time.monotonic()
                        try:
                            await to_thread.run_sync(manager.authenticate, token)
                        except WhimbrelError as exc:  # revoked or expired meanwhile
                            yield f"event: denied\ndata: {json.dumps(exc.to_dict())}\n\n"
                            return
            finally:
                feed.unsubscribe(listener)

        headers = {"Cache-Control": "no-store", "X-Accel-Buffering": "no"}
        return StreamingResponse(stream(), media_type="text/event-stream", headers=headers)
