"""What every route handler module shares: the state of its emulator and the request's project."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio
from aiohttp import web

from ._state import STATE, EmulatorState

__all__ = ["Handler", "run", "state", "pid"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
run = anyio.to_thread.run_sync  # every store call is blocking SQLite: always in a worker thread


def state(request: web.Request) -> EmulatorState:
    return request.app[STATE]


def pid(request: web.Request) -> str:
    return request.match_info["projectId"]
