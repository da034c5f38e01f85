"""The stages of ``cvbulk predict``: feed -> prepare -> score -> record, run by ``engine.run_job``.

This module owns only the stages and the error policy. It knows nothing of the file system, the
journal or the output format: ``predict.py`` hands it a source of work, a prepare function, a scoring
coroutine and a record function. That keeps the part that is easy to get wrong (bounded streams,
cancellation, per-item outcomes) testable on its own with fakes.

Stages are joined by bounded memory object streams, so memory stays flat however large the tree is:
a slow service holds the scorers back, which hold prepare back, which holds the scan back.
"""

from __future__ import annotations

import math
import os
from collections.abc import AsyncIterable, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ..client._body import ImageBody
from ..client._errors import (
    AuthenticationError,
    BadRequestError,
    CustomVisionError,
    EndpointUnreachableError,
    NotFoundError,
    RetryBudgetExhausted,
)
from ._reasons import one_line
from .engine import take_ready
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


@dataclass(frozen=True)
class WorkItem:
    """One file to score. ``key`` is its path relative to the root (posix): the output's path column."""

    key: str
    path: Path | None
    size: int
    mtime_ns: int
    entry: Any = None  # the source's own item (a blob), when it is not a local file


@dataclass(frozen=True)
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
        if isinstance(self.data, (bytes, bytearray)):
            return len(self.data)
        return self.data.size if isinstance(self.data, ImageBody) else 0


@dataclass(frozen=True)
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
    - ``record`` is synchronous (writes rows, flushes, journals); it runs in a worker thread with every
      outcome that queued up while the previous call ran, so batches grow under load and a row is
      durable a moment after its result arrives.
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
    record_linger: float = 0.25  # seconds an outcome may wait for others to be recorded with it
    breaker: int | None = None
    stats: EngineStats = field(default_factory=EngineStats)
    # A source whose checks wait on the network (a container): awaited by ``prepare_tasks`` preparers, its
    # CPU work under the limiter it is given; ``prepare`` is then not called.
    aprepare: Callable[[WorkItem, anyio.CapacityLimiter], Awaitable[Prepared | Outcome]] | None = None
    prepare_tasks: int | None = None

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
        to_prepare_send, to_prepare_recv = anyio.create_memory_object_stream[WorkItem](preparers * 2)
        to_score_send, to_score_recv = anyio.create_memory_object_stream[Prepared](
            min(self.workers, max(4, self.prepare_workers * 2))
        )
        to_record_send, to_record_recv = anyio.create_memory_object_stream[Outcome](max(64, self.workers * 2))
        failure: Exception | None = None
        async with anyio.create_task_group() as tg:
            # The recorder is outside the producers' task group so that, when a scorer raises a run-wide
            # error, what was already scored is still written before the error surfaces: the error is
            # held until the recorder has drained its (closed) stream, not raised into this task group,
            # which would cancel the recorder half-way.
            tg.start_soon(self._recorder, to_record_recv)
            try:
                async with anyio.create_task_group() as producers:
                    producers.start_soon(self._feed, source, to_prepare_send, to_record_send.clone())
                    for _ in range(preparers):
                        producers.start_soon(
                            self._preparer, to_prepare_recv.clone(), to_score_send.clone(), to_record_send.clone()
                        )
                    for _ in range(self.workers):
                        producers.start_soon(self._scorer, to_score_recv.clone(), to_record_send.clone())
                    # Only the clones stay open; each stage closes when its last sender is done.
                    to_prepare_recv.close()
                    to_score_send.close()
                    to_score_recv.close()
            except Exception as exc:  # the producers' group (a run-wide error); a cancellation goes through
                failure = exc
            finally:
                to_record_send.close()
        if failure is not None:
            raise failure
        return self.stats

    async def _feed(
        self,
        source: AsyncIterable[WorkItem | Outcome],
        out_prepare: ObjectSendStream[WorkItem],
        out_record: ObjectSendStream[Outcome],
    ) -> None:
        async with out_prepare, out_record:
            try:
                async for entry in source:
                    if isinstance(entry, Outcome):
                        await out_record.send(entry)
                    else:
                        await out_prepare.send(entry)
            finally:
                # An async generator left half-way (a run-wide error) is closed here, in its task, not
                # later by the garbage collector on whatever loop is running then.
                aclose = getattr(source, "aclose", None)
                if aclose is not None:
                    with anyio.CancelScope(shield=True):
                        await aclose()

    async def _preparer(
        self,
        inbox: ObjectReceiveStream[WorkItem],
        out_score: ObjectSendStream[Prepared],
        out_record: ObjectSendStream[Outcome],
    ) -> None:
        async with inbox, out_score, out_record:
            async for item in inbox:
                try:
                    if self.aprepare is not None:
                        result = await self.aprepare(item, self._cpu)
                    else:
                        result = await anyio.to_thread.run_sync(self.prepare, item, limiter=self._cpu)
                except Exception as exc:
                    reason = f"cannot read: {one_line(exc, limit=500)}"
                    result = Outcome(item.key, REJECTED, item.size, item.mtime_ns, reason=reason)
                if isinstance(result, Outcome):
                    await out_record.send(result)
                else:
                    await out_score.send(result)

    async def _scorer(self, inbox: ObjectReceiveStream[Prepared], out_record: ObjectSendStream[Outcome]) -> None:
        async with inbox, out_record:
            async for prepared in inbox:
                item = prepared.item
                try:
                    prediction = await self.score(prepared.data)
                except CustomVisionError as exc:
                    status = classify_error(exc)
                    if status is None:
                        raise
                    if status == ERROR:
                        self._streak.failure(exc)
                    outcome = Outcome(
                        item.key, status, item.size, item.mtime_ns, prepared.sha256,
                        reason=one_line(exc, limit=500), fixes=prepared.fixes, via=_via(prepared),
                    )
                else:
                    self._streak.success()
                    outcome = Outcome(
                        item.key, PREDICTED, item.size, item.mtime_ns, prepared.sha256,
                        prediction=prediction, fixes=prepared.fixes, nbytes=prepared.nbytes,
                        via=_via(prepared),
                    )
                await out_record.send(outcome)

    async def _recorder(self, inbox: ObjectReceiveStream[Outcome]) -> None:
        async with inbox:
            async for first in inbox:
                batch = take_ready(first, inbox, self.record_batch)
                # At 20 predictions/s each outcome would come alone: linger a moment to write several in one
                # thread hand-off and transaction (a kill loses at most this long of answers: scored again).
                with anyio.move_on_after(self.record_linger):
                    while len(batch) < self.record_batch:
                        try:
                            batch.append(await inbox.receive())
                        except anyio.EndOfStream:
                            break
                await anyio.to_thread.run_sync(self.record, batch)
                for outcome in batch:
                    self.stats.add(outcome)
                if self.on_recorded is not None:
                    self.on_recorded(batch)


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
