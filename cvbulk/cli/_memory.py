"""Process-wide memory tuning of the command line (a library leaves its host process alone)."""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

__all__ = ["limit_malloc_arenas"]

_M_ARENA_MAX = -8  # glibc's mallopt parameter


def limit_malloc_arenas(arenas: int = 2) -> bool:
    """Cap glibc's malloc arenas before any worker thread starts.

    glibc gives each thread that meets a busy arena an arena of its own, up to 8 per core; the jobs' worker
    threads (prepare, file reads, the state file) then leave memory scattered over many arenas, which is
    never handed back: a 5,000-photo upload peaked at 290 MB instead of 220 MB. With the GIL, the threads
    gain nothing from more arenas. ``MALLOC_ARENA_MAX`` in the environment wins. False where this is not
    glibc (or the call failed): nothing changes there.
    """
    if not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # musl and others have no mallopt
        return False
