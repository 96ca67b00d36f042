"""When each release is looked at next: one table and one waiter for the whole process.

A kopf timer per release woke every release every second to ask whether it was due: 1,000
releases cost 1,000 task wake-ups a second and a long-lived task each, while nothing changed.
Here the reconciler writes each release's next due time, and the operator's single scheduler
task sleeps until the earliest one (or until something wakes a release), takes every release
that is due, and hands it to the reconciler.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time

__all__ = ["DueTable"]


class DueTable:
    """Due times (``time.monotonic()``) by release key ``namespace/name``."""

    def __init__(self) -> None:
        self._due: dict[str, float] = {}
        self._changed = asyncio.Event()

    def set(self, key: str, *, seconds: float) -> None:
        """The release is due ``seconds`` from now."""
        self._due[key] = time.monotonic() + seconds
        self._changed.set()

    def wake(self, key: str) -> None:
        """Something the release depends on changed: due now (only a release already known)."""
        if key in self._due:
            self._due[key] = 0.0
            self._changed.set()

    def retry(self, key: str, *, seconds: float) -> None:
        """A scheduled look failed before it could set a due time: try again in ``seconds`` at most."""
        if key in self._due:
            self._due[key] = min(self._due[key], time.monotonic() + seconds)
            self._changed.set()

    def forget(self, key: str) -> None:
        self._due.pop(key, None)

    def take(self) -> list[str]:
        """The releases due now; each is taken (never due again) until its next due time is set."""
        now = time.monotonic()
        taken = [key for key, at in self._due.items() if at <= now]
        for key in taken:
            self._due[key] = math.inf
        return taken

    async def wait(self, *, at_most: float) -> None:
        """Sleep until the earliest due time, a change of the table, or ``at_most`` seconds."""
        earliest = min(self._due.values(), default=math.inf)
        delay = max(0.0, min(at_most, earliest - time.monotonic()))
        if delay > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._changed.wait(), delay)
        self._changed.clear()
