"""A status line for waits of unknown length (training): a spinner on a terminal, plain lines otherwise."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import IO

import anyio
from anyio.abc import TaskGroup

__all__ = ["Spinner", "spinner_for"]

_FRAMES = "|/-\\"


class Spinner:
    """``async with Spinner("training") as s: s.update("Training")``.

    On a terminal one line is redrawn in place ten times a second with the elapsed time. Elsewhere
    (CI logs, pipes) a line is printed when the status text changes, and every ``heartbeat``
    seconds, so that a log shows progress without a line per poll.
    """

    def __init__(
        self,
        label: str,
        *,
        stream: IO[str] | None = None,
        tty: bool | None = None,
        heartbeat: float = 30.0,
        silent: bool = False,
    ) -> None:
        self.label = label
        self.silent = silent
        self.stream = stream or sys.stderr
        if tty is None:
            try:
                tty = bool(self.stream.isatty())
            except (AttributeError, ValueError):
                tty = False
        self.tty = tty
        self.heartbeat = heartbeat
        self.status = ""
        self._key: str | None = None
        self._started = time.monotonic()
        self._last_line = 0.0
        self._task_group: TaskGroup | None = None
        self._width = 0
        self._frame = 0

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started

    def _text(self) -> str:
        seconds = int(self.elapsed)
        return f"{self.label}: {self.status} ({seconds // 60}:{seconds % 60:02d})"

    def update(self, status: str, *, key: str | None = None) -> None:
        """Show ``status``. In plain logs a line is printed when ``key`` (default: the status itself)
        changes, so "hashing 3/40" ... "hashing 40/40" can be one line per phase, not one per file."""
        key = status if key is None else key
        changed = key != self._key
        self._key = key
        self.status = status
        if self.silent:
            return
        if self.tty:
            self._draw()
        elif changed or time.monotonic() - self._last_line >= self.heartbeat:
            self._last_line = time.monotonic()
            print(self._text(), file=self.stream, flush=True)

    def _draw(self) -> None:
        line = f"{_FRAMES[self._frame % len(_FRAMES)]} {self._text()}"
        padding = " " * max(0, self._width - len(line))
        self._width = len(line)
        self.stream.write(f"\r{line}{padding}")
        self.stream.flush()

    async def _animate(self) -> None:
        while True:
            self._draw()
            self._frame += 1
            await anyio.sleep(0.1)

    def _clear(self) -> None:
        if self.tty and self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self.stream.flush()

    def say(self, text: str) -> None:
        """A line of its own (a phase that begins or ends), above the redrawn status line."""
        if self.silent:
            return
        self._clear()
        self._width = 0
        print(text, file=self.stream, flush=True)
        if self.tty and self._task_group is not None:
            self._draw()

    async def __aenter__(self) -> Spinner:
        self._started = time.monotonic()
        if self.tty and not self.silent:
            self._task_group = anyio.create_task_group()
            await self._task_group.__aenter__()
            self._task_group.start_soon(self._animate)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> bool | None:
        if self._task_group is not None:
            self._task_group.cancel_scope.cancel()
            try:
                # The body's own exception is not handed to the task group, so that it propagates
                # as itself rather than wrapped in an ExceptionGroup.
                await self._task_group.__aexit__(None, None, None)
            finally:
                self._task_group = None
                self._clear()
        return None


def spinner_for(label: str, progress: str = "auto", *, quiet: bool = False, stream: IO[str] | None = None) -> Spinner:
    """A Spinner as ``--progress`` asks: auto (redrawn on a terminal, plain lines otherwise), bar, plain,
    none; ``--quiet`` is none."""
    if quiet or progress == "none":
        return Spinner(label, stream=stream, tty=False, silent=True)
    tty = {"bar": True, "plain": False}.get(progress)
    return Spinner(label, stream=stream, tty=tty)
