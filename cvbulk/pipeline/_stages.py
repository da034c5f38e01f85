"""Plumbing between the stages of every job: draining a stream in chunks, and naming the error that
stopped a task group. Knows nothing of journals, files or the service."""

from __future__ import annotations

import sys
from typing import TypeVar

import anyio
from anyio.abc import ObjectReceiveStream

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

__all__ = ["take_ready", "first_cause"]

T = TypeVar("T")


def take_ready(first: T, receive: ObjectReceiveStream[T], limit: int) -> list[T]:
    """``first`` and what else is already waiting, up to ``limit`` items, without waiting for more:
    under load the chunks grow (one journal transaction for many), when idle each goes out at once."""
    chunk = [first]
    while len(chunk) < limit:
        try:
            chunk.append(receive.receive_nowait())
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return chunk


def first_cause(group: BaseExceptionGroup) -> BaseException | None:
    """The first leaf of the group that is not a cancellation (the others were cancelled because of it)."""
    leaves: list[BaseException] = []

    def walk(e: BaseException) -> None:
        if isinstance(e, BaseExceptionGroup):
            for sub in e.exceptions:
                walk(sub)
        else:
            leaves.append(e)

    walk(group)
    real = [e for e in leaves if not isinstance(e, anyio.get_cancelled_exc_class())]
    return real[0] if real else None
