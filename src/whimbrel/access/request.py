"""The user a request acts for, and its audit record, from the API's guard to the routes.

The guard sets it before the route runs; FastAPI runs sync routes in a worker thread
with a copy of the context, so they see the same (mutable) state."""

from __future__ import annotations

from contextvars import ContextVar
from dataclasses import dataclass, field

from whimbrel.access.audit import Record
from whimbrel.access.policy import Principal
from whimbrel.errors import Unauthorized

_current: ContextVar[RequestState | None] = ContextVar("whimbrel_request", default=None)


@dataclass
class RequestState:
    principal: Principal | None = None
    record: Record = field(default_factory=Record)
    source: str = ""  # the client's address


def begin(state: RequestState) -> None:
    _current.set(state)


def state() -> RequestState:
    st = _current.get()
    if st is None:  # a route reached without the guard: never allowed through
        st = RequestState()
        _current.set(st)
    return st


def principal() -> Principal:
    p = state().principal
    if p is None:
        raise Unauthorized(
            "E_AUTH_TOKEN",
            "the API token is missing or wrong",
            "send 'Authorization: Bearer <token>', or log in with 'whimbrel login'",
        )
    return p
