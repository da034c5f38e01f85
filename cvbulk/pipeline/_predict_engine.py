"""The stages of ``cvbulk predict``: feed -> prepare -> score -> record, run by ``engine.run_job``.

This module owns only the stages and the error policy. It knows nothing of the file system, the
journal or the output format: ``predict.py`` hands it a source of work, a prepare function, a scoring
coroutine and a record function. That keeps the part that is easy to get wrong (bounded streams,
cancellation, per-item outcomes) testable on its own with fakes.

Stages are joined by bounded memory object streams, so memory stays flat however large the tree is:
a slow service holds the scorers back, which hold prepare back, which holds the scan back.

CPU per image matters even at 20 predictions/s: each time the idle process wakes costs ~0.1 ms, so the
stages avoid wake-ups that carry no work. Hops skip anyio's checkpoint when they need not wait (checked
images reach the scorers through ``_Handoff``, one future per waiting scorer), and outcomes reach the
recorder in batches through ``_Outbox`` (one wake-up and one journal transaction a second) instead of one
stream hop each. A paced run from a container also coalesces the wake-ups themselves (``_naps``).
"""

from __future__ import annotations

import asyncio
import math
import os
from collections import deque
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread

from ..client._body import ImageBody  # the type of Prepared.data
from ..client._errors import (
    AuthenticationError,
    BadRequestError,
    BodyReadError,
    CustomVisionError,
    EndpointUnreachableError,
    NotFoundError,
    RetryBudgetExhausted,
)
from ._reasons import one_line
from .status import Status

__all__ = [
    "WorkItem",
    "Prepared",
    "Outcome",
    "EngineStats",
    "ServiceUnavailable",
    "ScoreStages",
    "PREDICTED",
    "REJECTED",
    "FAILED",
    "ERROR",
]

# Journal statuses (status.py). "rejected" and "failed" are final outcomes with a row in the
# output; "error" is transient (the service could not be reached or kept failing): no row is written,
# so that the next run retries the image and appends its row without duplicating a path.
PREDICTED = Status.PREDICTED
REJECTED = Status.REJECTED
FAILED = Status.FAILED
ERROR = Status.ERROR
SKIPPED = Status.SKIPPED


@dataclass(frozen=True, slots=True)  # slots: a frozen instance is made ~3x faster
class WorkItem:
    """One file to score. ``key`` is its path relative to the root (posix): the output's path column."""

    key: str
    path: Path | None
    size: int
    mtime_ns: int
    entry: Any = None  # the source's own item (a blob), when it is not a local file


@dataclass(frozen=True, slots=True)
class Prepared:
    """A checked image: ``data`` its bytes, or (an image that passes through) a body read from its file
    again when the request is written, so scorers waiting for a slot hold no image in memory."""

    item: WorkItem
    data: bytes | ImageBody | Any  # or a ``predict.UrlImage``: the service fetches it
    sha256: str | None  # None: an image passed through from its header alone (never hashed)
    fixes: tuple[str, ...] = ()
    via: str | None = None  # from a container: "url" or "bytes"

    @property
    def nbytes(self) -> int:
        data = self.data
        if isinstance(data, (bytes, bytearray)):
            return len(data)
        # an ImageBody has its size; a URL has none (isinstance against the Protocol costs ~20 µs an image)
        size = getattr(data, "size", None)
        return size if isinstance(size, int) else 0


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one file: exactly one per file that entered the engine."""

    key: str
    status: str
    size: int = 0
    mtime_ns: int = 0
    sha256: str | None = None
    prediction: Any = None  # an ImagePrediction when status == "predicted"
    reason: str | None = None  # one line for a person, when not predicted
    fixes: tuple[str, ...] = ()
    nbytes: int = 0  # bytes sent to the service
    via: str | None = None  # from a container: how the image went ("url", "bytes")

    @property
    def final(self) -> bool:
        """True when the outcome belongs in the output (and is never retried by a resume)."""
        return self.status != ERROR

    @property
    def ok(self) -> bool:
        return self.status == PREDICTED


@dataclass
class EngineStats:
    predicted: int = 0
    rejected: int = 0
    failed: int = 0
    errors: int = 0
    bytes_sent: int = 0
    statuses: dict[str, int] = field(default_factory=dict)

    def add(self, outcome: Outcome) -> None:
        self.statuses[outcome.status] = self.statuses.get(outcome.status, 0) + 1
        if outcome.status == PREDICTED:
            self.predicted += 1
        elif outcome.status == REJECTED:
            self.rejected += 1
        elif outcome.status == FAILED:
            self.failed += 1
        elif outcome.status == SKIPPED:
            pass
        else:
            self.errors += 1
        self.bytes_sent += outcome.nbytes


class ServiceUnavailable(CustomVisionError):
    """Too many transient failures in a row and no success: the service is down, stop the run."""

    retryable = True

    def __init__(self, count: int, last: CustomVisionError) -> None:
        self.last_error = last
        super().__init__(
            f"{count} predictions in a row failed, the last with: {last}",
            status=last.status,
            code=last.code,
            operation=last.operation,
        )

    def __reduce__(self):
        return (ServiceUnavailable, (0, self.last_error))


def classify_error(exc: CustomVisionError) -> str | None:
    """The outcome status for a failed prediction, or None when the whole run must stop.

    401/403 (wrong key) and 404 (no such project or published name) are the same for every image:
    going on would only record the same failure a million times.
    """
    inner = exc.last_error if isinstance(exc, RetryBudgetExhausted) else exc
    if isinstance(inner, (AuthenticationError, NotFoundError, EndpointUnreachableError)):
        return None  # the same for every image: one line, not a million outcomes
    if isinstance(inner, BadRequestError):
        return FAILED  # the service refused this image; sending it again will not help
    return ERROR  # 429 past the retry budget, 5xx, dropped connections, timeouts


@dataclass
class ScoreStages:
    """The stages of a scoring run (feed -> prepare -> score -> record) and what they share; a job runs
    them with ``engine.run_job(..., partial(stages.run, source))``, which unwraps a failing stage into its
    own error and closes the journal.

    - ``prepare`` is synchronous CPU/IO work; it runs in worker threads, at most ``prepare_workers``.
    - ``score`` sends one image; the client behind it paces and retries. ``workers`` scorers call it, so
      at most that many requests are in flight (the client's adaptive limit may hold fewer).
    - ``record`` is synchronous (writes rows, flushes, journals); it runs in a worker thread (on the loop itself
      with ``record_inline``) with the outcomes of up to ``record_linger`` seconds (at most ``record_batch``), so
      a row is durable about a second after its result arrives and a slow trickle of answers costs one
      transaction a second.
    - ``breaker``: stop with ServiceUnavailable after this many transient failures in a row without a
      success (default: max(20, 2 * workers)).

    On a run-wide failure every outcome that reached the recorder is still recorded before the error
    is raised; answers still in flight are dropped and scored again by the next run.
    """

    prepare: Callable[[WorkItem], Prepared | Outcome]
    score: Callable[[Any], Awaitable[Any]]
    record: Callable[[Sequence[Outcome]], None]
    on_recorded: Callable[[Sequence[Outcome]], None] | None = None
    workers: int = 16
    prepare_workers: int | None = None
    record_batch: int = 256
    # Seconds an outcome may wait for others to be recorded with it: at 20 predictions/s one thread hand-off,
    # one flush and one journal transaction for ~20 rows instead of one each (a kill loses at most this long
    # of answers, which the next run scores again).
    record_linger: float = 1.0
    # Record on the event loop instead of a worker thread: for a paced run, whose loop sleeps between ticks
    # anyway (``_naps``), a second of rows blocks it for a millisecond or two, and the thread's own wake-up
    # a second costs more than that.
    record_inline: bool = False
    breaker: int | None = None
    stats: EngineStats = field(default_factory=EngineStats)
    # A source whose checks wait on the network (a container): awaited by the scorers themselves (each checks
    # an image, then scores it: max(workers, prepare_tasks) of them), its CPU work under the limiter it is
    # given; ``prepare`` is then not called.
    aprepare: Callable[[WorkItem, anyio.CapacityLimiter], Awaitable[Prepared | Outcome]] | None = None
    prepare_tasks: int | None = None
    # A source that checks several images together (a container whose header reads go out at once): taken
    # before ``aprepare``. ``prepare_tasks`` checkers each check up to ``prepare_batch`` waiting items at once and
    # hand the checked images to the scorers, so a burst of reads is answered in a burst, not one wake-up each.
    aprepare_many: Callable[[Sequence[WorkItem], anyio.CapacityLimiter], Awaitable[Sequence[Prepared | Outcome]]] | None = None
    prepare_batch: int = 16

    def __post_init__(self) -> None:
        self.prepare_workers = max(1, self.prepare_workers or os.cpu_count() or 1)
        self.workers = max(1, self.workers)
        self._cpu = anyio.CapacityLimiter(self.prepare_workers)
        self._streak = _Streak(self.breaker if self.breaker is not None else max(20, 2 * self.workers))

    async def run(self, source: AsyncIterable[WorkItem | Outcome]) -> EngineStats:
        """Score every item of ``source`` (WorkItems, or ready Outcomes such as a scan problem)."""
        assert self.prepare_workers is not None
        preparers = self.prepare_tasks or self.prepare_workers
        # Buffers: enough to keep every stage busy, small enough to bound memory: prepared images (up to
        # 4 MB each) live only in the few buffered between prepare and score and the ones in flight.
        checkers = max(1, self.prepare_tasks or 1)
        # batched checks: room for every checker's next batch, so that each takes a whole one
        room = checkers * self.prepare_batch * 2 if self.aprepare_many is not None else preparers * 2
        inbox = _Handoff(room, senders=1, low=room // 2)
        # its senders: the checkers, or the preparers (none when each worker checks and scores: ``aprepare``)
        senders = checkers if self.aprepare_many is not None else 0 if self.aprepare is not None else preparers
        to_score = _Handoff(
            self.prepare_batch if self.aprepare_many is not None else min(self.workers, max(4, self.prepare_workers * 2)),
            senders=senders,
        )
        outbox = _Outbox(max(self.record_batch, self.workers * 2), self.record_batch)
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            # The recorder is outside the producers' task group so that, when a scorer raises a run-wide
            # error, what was already scored is still written before the error surfaces: the error is
            # held until the recorder has drained its (closed) outbox, not raised into this task group,
            # which would cancel the recorder half-way.
            tg.start_soon(self._recorder, outbox)
            try:
                async with anyio.create_task_group() as producers:
                    producers.start_soon(self._feed, source, inbox, outbox)
                    if self.aprepare_many is not None:
                        for _ in range(checkers):
                            producers.start_soon(self._checker, inbox, to_score, outbox)
                        for _ in range(self.workers):
                            producers.start_soon(self._scorer, to_score, outbox)
                    elif self.aprepare is not None:
                        # Checks that await (a container's ranged reads): each worker checks an image, then
                        # scores it; no hop between the two, so one wake-up less per image.
                        for _ in range(max(self.workers, self.prepare_tasks or 0)):
                            producers.start_soon(self._check_and_score, inbox, outbox)
                    else:
                        for _ in range(preparers):
                            producers.start_soon(self._preparer, inbox, to_score, outbox)
                        for _ in range(self.workers):
                            producers.start_soon(self._scorer, to_score, outbox)
            except Exception as exc:  # the producers' group (a run-wide error); a cancellation goes through
                failure = exc
            finally:
                outbox.close()
        if failure is not None:
            raise failure
        return self.stats

    async def _feed(
        self,
        source: AsyncIterable[WorkItem | Outcome],
        inbox: _Handoff,
        outbox: _Outbox,
    ) -> None:
        try:
            async for entry in source:
                await _pass_on(entry, inbox, outbox)
        finally:
            inbox.sender_done()
            # An async generator left half-way (a run-wide error) is closed here, in its task, not
            # later by the garbage collector on whatever loop is running then.
            aclose = getattr(source, "aclose", None)
            if aclose is not None:
                with anyio.CancelScope(shield=True):
                    await aclose()

    async def _preparer(self, inbox: _Handoff, out_score: _Handoff, outbox: _Outbox) -> None:
        try:
            while (item := await inbox.get()) is not None:
                await _pass_on(await self._prepare_one(item), out_score, outbox)
        finally:
            out_score.sender_done()

    async def _checker(self, inbox: _Handoff, out_score: _Handoff, outbox: _Outbox) -> None:
        assert self.aprepare_many is not None
        try:
            while (first := await inbox.get()) is not None:
                items = [first, *inbox.take_ready(self.prepare_batch - 1)]
                try:
                    results: Sequence[Prepared | Outcome] = await self.aprepare_many(items, self._cpu)
                except Exception as exc:
                    reason = f"cannot read: {one_line(exc, limit=500)}"
                    results = [Outcome(i.key, REJECTED, i.size, i.mtime_ns, reason=reason) for i in items]
                for result in results:
                    await _pass_on(result, out_score, outbox)
        finally:
            out_score.sender_done()

    async def _scorer(self, inbox: _Handoff, outbox: _Outbox) -> None:
        while (prepared := await inbox.get()) is not None:
            await outbox.put(await self._score_one(prepared))

    async def _check_and_score(self, inbox: _Handoff, outbox: _Outbox) -> None:
        while (item := await inbox.get()) is not None:
            result = await self._prepare_one(item)
            await outbox.put(result if isinstance(result, Outcome) else await self._score_one(result))

    async def _prepare_one(self, item: WorkItem) -> Prepared | Outcome:
        try:
            if self.aprepare is not None:
                return await self.aprepare(item, self._cpu)
            return await anyio.to_thread.run_sync(self.prepare, item, limiter=self._cpu)
        except Exception as exc:
            reason = f"cannot read: {one_line(exc, limit=500)}"
            return Outcome(item.key, REJECTED, item.size, item.mtime_ns, reason=reason)

    async def _score_one(self, prepared: Prepared) -> Outcome:
        """The outcome of one prediction; a run-wide error (see ``classify_error``) is raised."""
        item = prepared.item
        try:
            prediction = await self.score(prepared.data)
        except BodyReadError as exc:  # the image's own source failed as it was sent, not the service
            if exc.source_gone:
                raise exc.error from None  # the run's stop (``source_stop``) says it
            return Outcome(
                item.key, ERROR, item.size, item.mtime_ns, prepared.sha256,
                reason=exc.message, fixes=prepared.fixes, via=_via(prepared),
            )
        except CustomVisionError as exc:
            status = classify_error(exc)
            if status is None:
                raise
            if status == ERROR:
                self._streak.failure(exc)
            return Outcome(
                item.key, status, item.size, item.mtime_ns, prepared.sha256,
                reason=one_line(exc, limit=500), fixes=prepared.fixes, via=_via(prepared),
            )
        self._streak.success()
        return Outcome(
            item.key, PREDICTED, item.size, item.mtime_ns, prepared.sha256,
            prediction=prediction, fixes=prepared.fixes, nbytes=prepared.nbytes, via=_via(prepared),
        )

    async def _recorder(self, outbox: _Outbox) -> None:
        while batch := await outbox.take(self.record_linger):
            if self.record_inline:
                self.record(batch)
            else:
                await anyio.to_thread.run_sync(self.record, batch)
            for outcome in batch:
                self.stats.add(outcome)
            if self.on_recorded is not None:
                self.on_recorded(batch)


# Hand-offs without the checkpoint anyio's send and receive take even when they need not wait: at 20
# predictions/s every hop's extra turn of the event loop is CPU spent per image. A stage still waits (and
# so yields) whenever its queue is full or empty, so no stage can hold the loop for long.


async def _pass_on(item: Any, onward: _Handoff, outbox: _Outbox) -> None:
    """An outcome goes to the recorder; anything else on to the next stage."""
    if isinstance(item, Outcome):
        await outbox.put(item)
    else:
        await onward.put(item)


class _Handoff:
    """Work from one stage to the next (the feed to the checkers, checked images to the scorers): a bounded queue
    whose waiting taker is handed an item through one asyncio future (as ``asyncio.Queue`` does), closed when its
    last sender is done. anyio's memory object stream took a checkpoint and an Event per hand-off, and most takers
    wait for work: ~17 us a hand-off against ~3.4 us measured. ``low``: a full queue lets a sender in again only
    once it has fallen to that many, so the feed (and the listing behind it) wakes once per ``size - low`` items,
    not per item."""

    def __init__(self, size: int, *, senders: int, low: int | None = None) -> None:
        self.size = max(1, size)
        self.low = self.size - 1 if low is None else min(low, self.size - 1)
        self.senders = senders
        self.items: deque[Any] = deque()
        self._getters: deque[asyncio.Future[None]] = deque()
        self._putters: deque[asyncio.Future[None]] = deque()

    @staticmethod
    def _wake_one(waiters: deque[asyncio.Future[None]]) -> None:
        while waiters:
            waiter = waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    @staticmethod
    async def _wait(waiters: deque[asyncio.Future[None]], more: Callable[[], bool]) -> None:
        waiter = asyncio.get_running_loop().create_future()
        waiters.append(waiter)
        try:
            await waiter
        except BaseException:
            waiter.cancel()
            try:
                waiters.remove(waiter)
            except ValueError:
                pass
            if more() and not waiter.cancelled():  # woken, then cancelled: the wake-up goes to another
                _Handoff._wake_one(waiters)
            raise

    async def put(self, item: Any) -> None:
        while len(self.items) >= self.size:
            await self._wait(self._putters, lambda: len(self.items) < self.size)
        self.items.append(item)
        self._wake_one(self._getters)

    def sender_done(self) -> None:
        """One sender is done; after the last, the scorers end once the queue is empty."""
        self.senders -= 1
        if self.senders <= 0:
            getters, self._getters = self._getters, deque()
            for waiter in getters:
                if not waiter.done():
                    waiter.set_result(None)

    async def get(self) -> Any:
        """The next item, or None once every sender is done and the queue is empty."""
        while not self.items:
            if self.senders <= 0:
                return None
            await self._wait(self._getters, lambda: bool(self.items))
        item = self.items.popleft()
        if len(self.items) <= self.low:
            self._wake_one(self._putters)
        return item

    def take_ready(self, most: int) -> list[Any]:
        """Up to ``most`` items that are waiting now, without waiting for more."""
        out = [self.items.popleft() for _ in range(min(most, len(self.items)))]
        if out and len(self.items) <= self.low:
            self._wake_one(self._putters)
        return out


class _Outbox:
    """Outcomes on their way to the recorder: a list the stages append to, taken in batches.

    A memory object stream would wake the recorder (two turns of the event loop) for every outcome; here an
    outcome costs an append, and the recorder wakes once per batch: when the first outcome after a quiet spell
    arrives, then after ``linger`` seconds (or at once when ``batch`` outcomes wait, or when the outbox is
    closed). Bounded: a stage waits while ``limit`` outcomes wait to be recorded.
    """

    def __init__(self, limit: int, batch: int) -> None:
        self.limit = max(limit, batch)
        self.batch = batch
        self.items: list[Outcome] = []
        self.closed = False
        self._arrived: anyio.Event | None = None  # the recorder waits for a first outcome
        self._urgent: anyio.Event | None = None  # the recorder lingers: a full batch or the end cuts it short
        self._room: anyio.Event | None = None  # a stage waits for the recorder to take a batch

    async def put(self, outcome: Outcome) -> None:
        while len(self.items) >= self.limit:
            if self._room is None:
                self._room = anyio.Event()
            await self._room.wait()
        self.items.append(outcome)
        if self._arrived is not None:
            self._arrived.set()
            self._arrived = None
        if self._urgent is not None and len(self.items) >= self.batch:
            self._urgent.set()
            self._urgent = None

    def close(self) -> None:
        self.closed = True
        for event in (self._arrived, self._urgent):
            if event is not None:
                event.set()
        self._arrived = self._urgent = None

    async def take(self, linger: float) -> list[Outcome]:
        """The next batch (empty once the outbox is closed and drained)."""
        while not self.items:
            if self.closed:
                return []
            self._arrived = anyio.Event()
            await self._arrived.wait()
        if linger > 0 and len(self.items) < self.batch and not self.closed:
            self._urgent = anyio.Event()
            with anyio.move_on_after(linger):
                await self._urgent.wait()
            self._urgent = None
        batch = self.items[: self.batch]
        del self.items[: self.batch]
        if self._room is not None:
            self._room.set()
            self._room = None
        return batch


def _via(prepared: Prepared) -> str | None:
    # A URL image the service could not fetch may have been sent as bytes after all (``--via auto``).
    return getattr(prepared.data, "went", None) or prepared.via


class _Streak:
    """Counts transient failures since the last success; trips when the service looks down."""

    def __init__(self, limit: int) -> None:
        self.limit = limit if limit > 0 else math.inf
        self.count = 0

    def success(self) -> None:
        self.count = 0

    def failure(self, exc: CustomVisionError) -> None:
        self.count += 1
        if self.count >= self.limit:
            raise ServiceUnavailable(self.count, exc)
