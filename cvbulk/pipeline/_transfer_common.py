"""What the jobs with a journal share (``upload``, ``export``, ``migrate``): the journal's lock and lifetime,
running the stages inside the progress display, and (export, migrate) paging a project's images and progress
set-up."""

from __future__ import annotations

import sys
from contextlib import AsyncExitStack
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, AsyncIterator, Awaitable, Callable, TypeVar

import anyio
import anyio.to_thread
from anyio.abc import ObjectSendStream

from .errors import StateFileError
from ..client import ApiGroup
from ._stages import first_cause
from .journal import Journal, JournalEntry, JournalMismatch

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from ..client import Image

__all__ = [
    "STATE_DIR",
    "PAGE",
    "JournalCalls",
    "open_journal",
    "watch_progress",
    "send_pages",
    "run_stages",
    "FatalBatchError",
    "send_recorded",
]

#: State and report live in this hidden folder (scans skip hidden folders).
STATE_DIR = ".cvbulk"
PAGE = 256  # GetImages: "take ... limited to 256"

T = TypeVar("T")
O = TypeVar("O")


class JournalCalls:
    """Mixin for a run dataclass with ``journal_lock: anyio.Lock``."""

    journal_lock: anyio.Lock

    async def journal_call(self, fn: Any, *args: Any) -> Any:
        # SQLite blocks: one call at a time, in a worker thread.
        async with self.journal_lock:
            return await anyio.to_thread.run_sync(fn, *args)


class FatalBatchError(Exception):
    """The run cannot go on (bad key, project gone); ``outcomes`` are the batch's, to be recorded first."""

    def __init__(self, error: BaseException, outcomes: list[Any]) -> None:
        super().__init__(str(error))
        self.error = error
        self.outcomes = outcomes


async def send_recorded(
    run: JournalCalls,
    journal: Journal,
    intent: list[JournalEntry],
    send: Callable[[], Awaitable[list[O]]],
    entry: Callable[[O], JournalEntry],
) -> list[O]:
    """Send one batch between two journal writes; returns its outcomes.

    Intent first: a kill from here on leaves these items ``sending``, re-sent on resume. The outcome is
    on disk before the caller takes its next batch; a fatal error records the batch's outcomes, then
    raises the error itself.
    """
    await run.journal_call(journal.mark_sending, intent)
    try:
        outcomes = await send()
    except FatalBatchError as exc:
        await run.journal_call(journal.record, [entry(o) for o in exc.outcomes])
        raise exc.error from None
    await run.journal_call(journal.record, [entry(o) for o in outcomes])
    return outcomes


async def open_journal(
    path: Path, *, job: str, fingerprint: dict[str, Any], hint: str = "pass {opt:state} to use another state file"
) -> Journal:
    """Open the state file in a worker thread; another job's state file is a usage error with ``hint``."""
    try:
        return await anyio.to_thread.run_sync(partial(Journal.open, path, job=job, fingerprint=fingerprint))
    except JournalMismatch as exc:
        raise StateFileError(f"{exc} ({hint})") from None


def watch_progress(progress: Any, total: int, client: Any) -> None:
    """Give the progress display its total and the client's current training concurrency."""
    if progress is None:
        return
    progress.set_total(total)
    if getattr(client, "pacer", None) is not None:
        progress.set_concurrency(lambda: client.pacer.concurrency(ApiGroup.TRAINING))


async def send_pages(images: AsyncIterator[Image], page_send: ObjectSendStream[list[Image]]) -> None:
    """Regroup the client's image iterator into pages of ``PAGE`` for the planner."""
    async with page_send:
        page: list[Image] = []
        async for image in images:
            page.append(image)
            if len(page) >= PAGE:
                await page_send.send(page)
                page = []
        if page:
            await page_send.send(page)


async def run_stages(
    run: JournalCalls,
    journal: Journal | None,
    progress: Any,
    pipeline: Callable[[], Awaitable[None]],
    finish: Callable[[], Awaitable[T]],
) -> T:
    """Run the pipeline inside the progress display, then ``finish``; always close the journal (if any).

    A failing stage surfaces as its own exception, not as the task group's exception group.
    """
    try:
        async with AsyncExitStack() as stack:
            if progress is not None:
                await stack.enter_async_context(progress)
            await pipeline()
        return await finish()
    except BaseExceptionGroup as group:
        first = first_cause(group)
        if first is not None:
            raise first from None
        raise
    finally:
        if journal is not None:
            with anyio.CancelScope(shield=True):  # the state file must be closed even when cancelled
                await run.journal_call(journal.close)
