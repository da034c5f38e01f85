"""Wake-up coalescing for a paced run: the event loop serves the network at most once per quantum.

At 20 predictions/s the client is idle nearly all the time, and each time the idle process wakes costs more
than the work it then does (measured on a shared 2-core VM: ~170 us of CPU for a bare asyncio sleep, against
~40 us for a whole request and its answer). Answers, header reads and thread hand-offs each woke it on their
own, ~30 times a second. A paced run does not need them served the moment they arrive: requests start on the
rate limiter's ticks (``client._ratelimit.PREDICTION_TICK``), so whatever arrives between two ticks can wait
for the next one and be served in the same wake-up, like a network card's interrupt moderation.

:class:`NappingSelector` does that for an event loop made by :func:`napping_loop` (the CLI makes its loop so),
while :func:`naps` is in force: once the loop has woken in a quantum-long cell of the clock, its next wait
sleeps to the end of that cell, then takes everything ready at once. The rate limiter's ticks fall on the cells'
ends, so pacing is as before; any other timer (a timeout, a retry's wait, the recorder's linger) and any answer
are served at most one quantum late, never early. A loop not made here (a library caller's) is left alone.
"""

from __future__ import annotations

import asyncio
import math
import selectors
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = ["NappingSelector", "napping_loop", "naps"]


class NappingSelector(selectors.DefaultSelector):  # the platform's best (epoll on Linux)
    """A selector that, while ``quantum`` > 0, wakes at most once per ``quantum``-long cell of the monotonic clock
    (asyncio's timer clock) once it has woken in that cell: it sleeps to the cell's end, then returns what is
    ready. A timer due meanwhile is served at the cell's end too (at most one quantum late, never early); the
    rate limiter's ticks fall on the cells' ends, so they are on time."""

    quantum = 0.0
    _cell = -math.inf  # the cell of the clock in which the last wait ended

    def _cell_of(self, when: float) -> float:
        # a wake a hair before a boundary (a timer rounded down) belongs to the cell it opens
        return math.floor(when / self.quantum + 1e-6)

    def select(self, timeout: float | None = None) -> list[tuple[Any, int]]:
        quantum = self.quantum
        if quantum <= 0 or (timeout is not None and timeout <= 0):
            return super().select(timeout)
        now = time.monotonic()
        cell = self._cell_of(now)
        if cell == self._cell:  # woken in this cell already: sleep to its end, then take everything ready
            end = (cell + 1) * quantum
            time.sleep(max(0.0, end - now))
            ready = super().select(0)
            due = timeout is not None and now + timeout <= end  # the loop's next timer is due by now
            if ready or due:
                self._cell = self._cell_of(time.monotonic())
                return ready
            if timeout is not None:
                timeout = max(0.0, now + timeout - time.monotonic())
        ready = super().select(timeout)  # the first wake-up of a cell: at once, for I/O or a timer
        self._cell = self._cell_of(time.monotonic())
        return ready


class _NappingLoop(asyncio.SelectorEventLoop):
    """An event loop whose selector :func:`naps` can put to sleep between quanta."""

    def __init__(self) -> None:
        self.napper = NappingSelector()
        super().__init__(self.napper)


def napping_loop() -> asyncio.AbstractEventLoop:
    """A new event loop for ``anyio.run(..., backend_options={"loop_factory": napping_loop})``: asyncio's
    selector loop with a :class:`NappingSelector` (on Windows, asyncio's default loop: no naps there)."""
    if sys.platform == "win32":
        return asyncio.new_event_loop()
    return _NappingLoop()


@contextmanager
def naps(quantum: float) -> Iterator[bool]:
    """While in force, the running loop (when :func:`napping_loop` made it) serves I/O at most once per
    ``quantum`` seconds; yields whether it does. ``quantum`` <= 0: no change."""
    try:
        napper = getattr(asyncio.get_running_loop(), "napper", None)
    except RuntimeError:  # no asyncio loop running (another backend)
        napper = None
    if not isinstance(napper, NappingSelector) or quantum <= 0:
        yield False
        return
    before = napper.quantum
    napper.quantum = quantum
    try:
        yield True
    finally:
        napper.quantum = before
