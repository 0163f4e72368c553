"""A finding: one thing preflight noticed, with its stable code, cause and fix."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any, Protocol

from whimbrel.drivers.base import HostDriver
from whimbrel.errors import WrongState


class HostDrivers(Protocol):
    """Where checks get a host's driver: the connection pool, or a job's context."""

    def for_host(self, host_name: str) -> HostDriver: ...


class Severity(StrEnum):
    ERROR = "error"  # the operation would fail or do harm: it does not run
    WARNING = "warning"  # it runs, but the administrator should know
    INFO = "info"


@dataclass(frozen=True)
class Finding:
    code: str
    severity: Severity
    subject: str
    cause: str
    fix: str
    detail: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {**asdict(self), "severity": str(self.severity)}

    def line(self) -> str:
        return f"{self.code} [{self.severity}] {self.subject}: {self.cause}. Fix: {self.fix}"


def demote(findings: list[Finding], ignore: tuple[str, ...]) -> list[Finding]:
    """``--ignore CODE`` turns that error into a warning; the finding stays visible."""
    return [
        Finding(f.code, Severity.WARNING, f.subject, f.cause, f.fix, f.detail)
        if f.code in ignore and f.severity == Severity.ERROR
        else f
        for f in findings
    ]


def blocking(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == Severity.ERROR]


class PreflightFailed(WrongState):
    def __init__(self, findings: list[Finding]):
        errs = blocking(findings)
        super().__init__(
            "E_PREFLIGHT_FAILED",
            f"{len(errs)} preflight finding(s) block the move: " + ", ".join(f.code for f in errs),
            "fix each finding listed (or rerun with --ignore CODE for one you accept)",
            "\n".join(f.line() for f in findings),
        )
        self.findings = findings
