"""Running an asyncio service (``start()``/``stop()``) in a thread of its own, for tests."""

from __future__ import annotations

import asyncio
import threading
from typing import Self

__all__ = ["InThread"]


class InThread:
    """Adds ``start_in_thread``, ``stop_in_thread`` and ``with`` to a class with async start/stop."""

    thread_name = "in-thread"
    _thread: threading.Thread | None = None
    _thread_loop: asyncio.AbstractEventLoop | None = None
    _thread_stop: asyncio.Event | None = None

    async def start(self) -> None:
        raise NotImplementedError

    async def stop(self) -> None:
        raise NotImplementedError

    def start_in_thread(self, *, timeout: float = 60.0) -> None:
        """Run :meth:`start` in a daemon thread with its own event loop; returns once running."""
        started = threading.Event()
        failure: list[BaseException] = []

        async def main() -> None:
            self._thread_loop = asyncio.get_running_loop()
            self._thread_stop = asyncio.Event()
            try:
                await self.start()
            except Exception as error:  # noqa: BLE001 - re-raised in the caller's thread below
                failure.append(error)
                started.set()
                return
            started.set()
            await self._thread_stop.wait()
            await self.stop()

        self._thread = threading.Thread(
            target=asyncio.run, args=(main(),), name=self.thread_name, daemon=True
        )
        self._thread.start()
        if not started.wait(timeout):
            raise TimeoutError(f"{type(self).__name__} did not start in time")
        if failure:
            raise failure[0]

    def stop_in_thread(self, *, timeout: float = 30.0) -> None:
        if self._thread is None or self._thread_loop is None or self._thread_stop is None:
            return
        self._thread_loop.call_soon_threadsafe(self._thread_stop.set)
        self._thread.join(timeout)
        self._thread = None

    def __enter__(self) -> Self:
        self.start_in_thread()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop_in_thread()
