"""Owned background jobs (trainings) of one emulator.

A task group cannot span ``Emulator.__aenter__`` .. ``__aexit__``: the two may run in different
tasks (pytest fixtures do that). So the jobs are tasks this object owns: every one is tracked,
and ``close`` cancels and awaits them all, so none outlives the emulator.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

__all__ = ["Background"]

log = logging.getLogger("cvbulk.emulator")


class Background:
    def __init__(self) -> None:
        self._tasks: set[asyncio.Task] = set()
        self._closed = False

    def start_soon(self, fn: Callable[..., Awaitable[object]], *args: object) -> None:
        if self._closed:
            raise RuntimeError("the emulator is stopping")
        task = asyncio.get_running_loop().create_task(self._guard(fn, *args))
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    @staticmethod
    async def _guard(fn: Callable[..., Awaitable[object]], *args: object) -> None:
        try:
            await fn(*args)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("background job failed")

    async def close(self) -> None:
        self._closed = True
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
