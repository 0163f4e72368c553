"""What the API checks before it reads a request's body: the token of a request that changes
anything, and the body's size.  FastAPI reads a body before it runs a route's dependencies, so
without this anyone could make the manager read (and parse) as much as they send."""

from __future__ import annotations

import hmac
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from whimbrel.errors import InvalidInput, Unauthorized, WhimbrelError, http_status

MAX_BODY = 1 << 20  # a VM's definition is a few KiB; a MiB is generous
_CHANGES = {b"POST", b"PUT", b"PATCH", b"DELETE"}

Scope = dict[str, Any]
Receive = Callable[[], Any]
Send = Callable[[dict[str, Any]], Any]


class RequestGuard:
    """ASGI middleware: a changing request without the right token ends at 401, and a body
    over ``max_body`` at 413, both with Whimbrel's coded errors, before the body is read."""

    def __init__(
        self, app: Any, token: Callable[[], str], token_file: Path, max_body: int = MAX_BODY
    ) -> None:
        self.app, self.token, self.token_file, self.max_body = app, token, token_file, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        if scope["method"].encode() in _CHANGES and not self._authorized(headers):
            await _answer(send, token_refused(self.token_file))
            return
        length = headers.get(b"content-length")
        if length is not None and (not length.isdigit() or int(length) > self.max_body):
            await _answer(send, self._too_large())
            return
        if length is None and scope["method"].encode() in _CHANGES:
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
            return
        await self.app(scope, receive, send)

    def _authorized(self, headers: dict[bytes, bytes]) -> bool:
        given = headers.get(b"authorization", b"").decode("latin-1")
        scheme, _, value = given.partition(" ")
        return scheme.lower() == "bearer" and hmac.compare_digest(value.strip(), self.token())

    def _too_large(self) -> WhimbrelError:
        return InvalidInput(
            "E_REQUEST_TOO_LARGE",
            f"the request body is larger than {self.max_body} bytes",
            "send one object per request; no Whimbrel request needs more",
        )


def token_refused(token_file: Path) -> Unauthorized:
    """The one answer to a missing or wrong token, from the guard or a route's check."""
    return Unauthorized(
        "E_AUTH_TOKEN",
        "the API token is missing or wrong",
        f"send 'Authorization: Bearer <token>' with the token in {token_file}",
    )


async def _answer(send: Send, err: WhimbrelError) -> None:
    status = 413 if err.code == "E_REQUEST_TOO_LARGE" else http_status(err)
    body = json.dumps({"error": err.to_dict()}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
