"""CPU work (training, evaluation) in daemon worker threads that a stop can cancel.

The trainer is pure Python: a fit of a large project holds a core for seconds. ``run_cpu`` runs
it in a daemon thread (a stop never waits for it: the process may exit while it runs) and, when
the awaiting task is cancelled (a stop, a closed request), sets the thread's cancel flag; the
trainer's loops call ``checkpoint()``, which then raises ``WorkCancelled``, so the thread ends
within one step instead of burning a core for nothing.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import Any, TypeVar

import anyio

__all__ = ["WorkCancelled", "checkpoint", "run_cpu"]

T = TypeVar("T")

_local = threading.local()


class WorkCancelled(Exception):
    """The work's awaiter went away (a stop or a closed request): the result is not wanted."""


def checkpoint() -> None:
    """Raise WorkCancelled if this thread's work was cancelled (a no-op outside ``run_cpu``)."""
    flag: threading.Event | None = getattr(_local, "cancel", None)
    if flag is not None and flag.is_set():
        raise WorkCancelled


def _settle(future: asyncio.Future, result: Any, error: BaseException | None) -> None:
    if future.done():
        return  # cancelled meanwhile
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)


async def run_cpu(fn: Callable[..., T], *args: Any, limiter: anyio.CapacityLimiter) -> T:
    """``fn(*args)`` in a daemon thread, at most ``limiter`` of them at once; cancellable."""
    async with limiter:
        loop = asyncio.get_running_loop()
        future: asyncio.Future = loop.create_future()
        cancel = threading.Event()

        def work() -> None:
            _local.cancel = cancel
            result: Any = None
            error: BaseException | None = None
            try:
                result = fn(*args)
            except BaseException as exc:  # handed to the awaiter, as to_thread does
                error = exc
            try:
                loop.call_soon_threadsafe(_settle, future, result, error)
            except RuntimeError:
                pass  # the loop is closed: nobody waits any more

        threading.Thread(target=work, name="cvbulk-emulator-cpu", daemon=True).start()
        try:
            return await future
        finally:
            cancel.set()  # done, or abandoned: a running job stops at its next checkpoint
