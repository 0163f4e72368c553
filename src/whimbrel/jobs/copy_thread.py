"""The thread a migration's blocking driver call runs on, watched by the job's loop."""

from __future__ import annotations

import threading
from collections.abc import Callable

POLL_S = 0.25  # how often the loop looks at a copy under way


class CopyThread(threading.Thread):
    def __init__(self, fn: Callable[[], None]):
        super().__init__(name="migration-copy", daemon=True)
        self._fn = fn
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self._fn()
        except BaseException as exc:  # handed to the job's thread
            self.error = exc
