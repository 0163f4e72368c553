"""What the API checks before it reads a request's body: who sends it (their token) and
the body's size; and what it records after: the audit entry of each change.

FastAPI reads a body before it runs a route's dependencies, so without this anyone
could make the manager read (and parse) as much as they send."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

from anyio import CapacityLimiter, to_thread

from whimbrel.access.audit import Record
from whimbrel.access.policy import Principal
from whimbrel.access.request import RequestState, begin
from whimbrel.errors import InvalidInput, WhimbrelError, http_status

MAX_BODY = 1 << 20  # a VM's definition is a few KiB; a MiB is generous
_CHANGES = {"POST", "PUT", "PATCH", "DELETE"}
# Answered without a token: the manager's health (for load balancers) and the login.
OPEN = {"/api/v1/health", "/api/v1/login"}

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]
Authenticate = Callable[[str], Principal]  # raises Unauthorized
Audit = Callable[[Record, str, str, str, int], None]  # record, source, method, path, status


class RequestGuard:
    """ASGI middleware: an API request without a valid token ends at 401, and a body over
    ``max_body`` at 413, both with Whimbrel's coded errors, before the body is read; every
    change and every refusal of a token is appended to the audit trail."""

    def __init__(
        self,
        app: Any,
        authenticate: Authenticate,
        audit: Audit,
        max_body: int = MAX_BODY,
        fresh: Callable[[str], Principal | None] = lambda _t: None,
    ) -> None:
        self.app, self.authenticate, self.audit, self.max_body = app, authenticate, audit, max_body
        self.fresh = fresh  # a token checked moments ago: no store read, no worker thread
        # Token checks have threads of their own: with every API worker stuck on a frozen
        # store, a check still runs (and ends at its deadline), so /replica answers.
        self.checks = CapacityLimiter(16)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope.get("path", "")
        if scope["type"] != "http" or not path.startswith("/api/"):
            await self.app(scope, receive, send)  # the console page and the API's docs
            return
        method = scope["method"]
        source = (scope.get("client") or ("", 0))[0]
        state = RequestState(source=source)
        begin(state)
        status = 500

        async def recorded(message: dict[str, Any]) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            refusal = await self._refusal(scope, state)
            if refusal is not None:
                state.record.code = refusal.code
                await _answer(recorded, refusal)
                return
            await self._forward(scope, receive, recorded, method)
        finally:
            if method in _CHANGES or status == 401:
                await to_thread.run_sync(self.audit, state.record, source, method, path, status)

    async def _refusal(self, scope: Scope, state: RequestState) -> WhimbrelError | None:
        headers = dict(scope.get("headers") or [])
        if scope["path"] not in OPEN:
            given = headers.get(b"authorization", b"").decode("latin-1")
            scheme, _, value = given.partition(" ")
            token = value.strip() if scheme.lower() == "bearer" else ""
            who = self.fresh(token)
            if who is None:
                try:
                    who = await to_thread.run_sync(self.authenticate, token, limiter=self.checks)
                except WhimbrelError as exc:
                    return exc
            state.principal, state.record.user = who, who.user
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            return self._too_large()
        return None

    async def _forward(self, scope: Scope, receive: Receive, send: Send, method: str) -> None:
        headers = dict(scope.get("headers") or [])
        if b"content-length" in headers or method not in _CHANGES:
            await self.app(scope, receive, send)
            return
        # Chunked: read it here, up to the limit, and hand it on whole.
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                return  # the client went away
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_body:
                await _answer(send, self._too_large())
                return
        whole = {"type": "http.request", "body": body, "more_body": False}
        sent = False

        async def replay() -> Any:
            nonlocal sent
            if sent:
                return await receive()
            sent = True
            return whole

        await self.app(scope, replay, send)

    def _too_large(self) -> WhimbrelError:
        return InvalidInput(
            "E_REQUEST_TOO_LARGE",
            f"the request body is larger than {self.max_body} bytes",
            "send one object per request; no Whimbrel request needs more",
        )


async def _answer(send: Send, err: WhimbrelError) -> None:
    status = 413 if err.code == "E_REQUEST_TOO_LARGE" else http_status(err)
    body = json.dumps({"error": err.to_dict()}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
