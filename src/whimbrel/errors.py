"""Every error Whimbrel raises on purpose.

    WhimbrelError                      root: code, category, cause, fix, detail
      +-- InvalidInput                 bad argument (E_INVALID_*)
      +-- NotFound                     unknown host / cluster / VM / job (E_*_NOT_FOUND)
      +-- Conflict                     duplicate names, membership clashes (E_*_EXISTS)
      +-- WrongState                   the object is not in a state that allows it (E_*_STATE)
      +-- InsufficientResources        not enough memory / disk on the target (E_NO_*)
      +-- HostUnreachable              libvirt URI does not answer (E_HOST_UNREACHABLE)
      +-- HostUntrusted                TLS handshake refused either way (E_HOST_CERT_*)
      +-- LockConflict                 a disk lease is held elsewhere (E_DISK_LOCKED)
      +-- HypervisorError              the hypervisor refused; its own text kept in detail
      +-- Unauthorized                 missing or wrong API token (E_AUTH_TOKEN)
      +-- LabError                     the local lab cannot be built or torn down

Each error has a stable ``code`` (never renamed: scripts match on it), a
``category`` that decides the HTTP status and the CLI exit code in one place
(:func:`http_status`, :func:`exit_code`), a ``cause`` in words and a ``fix``
the administrator can act on.  ``detail`` keeps the hypervisor's own text.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any


class Category(StrEnum):
    INVALID_INPUT = "invalid_input"
    NOT_FOUND = "not_found"
    CONFLICT = "conflict"
    WRONG_STATE = "wrong_state"
    NO_RESOURCES = "no_resources"
    ENVIRONMENT = "environment"
    UNAUTHORIZED = "unauthorized"
    FORBIDDEN = "forbidden"
    INTERNAL = "internal"


_HTTP = {
    Category.INVALID_INPUT: 400,
    Category.UNAUTHORIZED: 401,
    Category.FORBIDDEN: 403,
    Category.NOT_FOUND: 404,
    Category.CONFLICT: 409,
    Category.WRONG_STATE: 409,
    Category.NO_RESOURCES: 507,
    Category.ENVIRONMENT: 502,
    Category.INTERNAL: 500,
}

_EXIT = {
    Category.INVALID_INPUT: 2,
    Category.NOT_FOUND: 3,
    Category.CONFLICT: 4,
    Category.WRONG_STATE: 5,
    Category.NO_RESOURCES: 6,
    Category.ENVIRONMENT: 7,
    Category.UNAUTHORIZED: 8,
    Category.INTERNAL: 9,
    Category.FORBIDDEN: 10,
}


class WhimbrelError(Exception):
    """Root of every deliberate error.  Subclasses fix ``category``."""

    category: Category = Category.INTERNAL

    def __init__(self, code: str, cause: str, fix: str, detail: str = "") -> None:
        super().__init__(f"{code}: {cause}")
        self.code = code
        self.cause = cause
        self.fix = fix
        self.detail = detail

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "category": self.category.value,
            "cause": self.cause,
            "fix": self.fix,
            "detail": self.detail,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> WhimbrelError:
        """Rebuild an error sent by the API, keeping its category."""
        sub = _BY_CATEGORY.get(Category(data.get("category", "internal")), WhimbrelError)
        return sub(
            str(data.get("code", "E_UNKNOWN")),
            str(data.get("cause", "")),
            str(data.get("fix", "")),
            str(data.get("detail", "")),
        )


class InvalidInput(WhimbrelError):
    category = Category.INVALID_INPUT


class NotFound(WhimbrelError):
    category = Category.NOT_FOUND


class Conflict(WhimbrelError):
    category = Category.CONFLICT


class WrongState(WhimbrelError):
    category = Category.WRONG_STATE


class InsufficientResources(WhimbrelError):
    category = Category.NO_RESOURCES


class HostUnreachable(WhimbrelError):
    category = Category.ENVIRONMENT


class HostUntrusted(WhimbrelError):
    category = Category.ENVIRONMENT


class LockConflict(WhimbrelError):
    category = Category.CONFLICT


class HypervisorError(WhimbrelError):
    category = Category.ENVIRONMENT


class Unauthorized(WhimbrelError):
    category = Category.UNAUTHORIZED


class Forbidden(WhimbrelError):
    """Known user, but their roles do not allow this (HTTP 403)."""

    category = Category.FORBIDDEN


class Cancelled(WhimbrelError):
    """Raised by a step that stopped its work because the job was cancelled."""

    category = Category.CONFLICT


class Stranded(WhimbrelError):
    """Raised by a step whose half-done work no undo can take back (a VM that runs from
    two hosts' memory): the job ends without undoing anything and its fix is the way on."""

    category = Category.ENVIRONMENT


class LabError(WhimbrelError):
    category = Category.ENVIRONMENT


_BY_CATEGORY: dict[Category, type[WhimbrelError]] = {
    Category.INVALID_INPUT: InvalidInput,
    Category.NOT_FOUND: NotFound,
    Category.CONFLICT: Conflict,
    Category.WRONG_STATE: WrongState,
    Category.NO_RESOURCES: InsufficientResources,
    Category.ENVIRONMENT: HypervisorError,
    Category.UNAUTHORIZED: Unauthorized,
    Category.FORBIDDEN: Forbidden,
    Category.INTERNAL: WhimbrelError,
}


def http_status(err: WhimbrelError) -> int:
    return _HTTP[err.category]


def exit_code(err: WhimbrelError) -> int:
    return _EXIT[err.category]


def not_found(kind: str, name: str) -> NotFound:
    """The one shape of every unknown-name error: ``E_HOST_NOT_FOUND`` and friends."""
    return NotFound(
        f"E_{kind.upper()}_NOT_FOUND",
        f"no {kind} named {name!r} is known to the manager",
        f"run 'whimbrel {kind} list' to see the names, or add the {kind} first",
    )


def already_exists(kind: str, name: str) -> Conflict:
    return Conflict(
        f"E_{kind.upper()}_EXISTS",
        f"a {kind} named {name!r} already exists",
        f"choose another name, or remove the existing {kind} first",
    )
