"""The stage runner every job runs on (upload, predict, export, migrate).

A job is a few stages joined by bounded anyio memory object streams inside one task group. What they all
need lives here, once:

- :class:`ProgressSink`: how a job reports progress. The pipeline only calls it; the display (a bar, plain
  lines, nothing) belongs to whoever runs the job (the CLI's ``cvbulk.cli._progress``).
- :func:`run_job`: runs the stages (with the journal and the progress sink), then ``finish``; a failing
  stage surfaces as itself, not as an exception group (:func:`unwrap`, the one place that unwraps); the
  journal is always closed, even when cancelled. With a :class:`Stop`, a run-wide error the job can report
  on (storage that stopped answering mid-run) still runs ``finish`` (the report: every outcome so far, why
  the run stopped, how many listed items it did not reach), then raises :class:`RunStopped`.
- :class:`JournalCalls`, :func:`open_journal`: the SQLite journal in a worker thread, one call at a time.
- :func:`send_recorded`, :class:`FatalBatchError`: one batch between two journal writes (intent, outcomes).
- :func:`take_ready`: drain a stream in chunks that grow under load (one journal transaction for many).
- :func:`put`: hand an item to the next stage without a trip round the event loop when there is room.
- :func:`check_outputs`: before any request, every file a job will write can be written (one line naming it).
- :func:`retry_notices`: the clients' waits (a 429, a 5xx) shown on the progress sink while a job runs.
"""

from __future__ import annotations

import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from .errors import ConfigError, FatalRunError, PipelineError, StateFileError
from .journal import Journal, JournalEntry, JournalMismatch

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

if TYPE_CHECKING:
    from ..client import Image

__all__ = [
    "STATE_DIR",
    "PAGE",
    "ProgressSink",
    "NullProgress",
    "JournalCalls",
    "open_journal",
    "run_job",
    "Stop",
    "RunStopped",
    "unwrap",
    "take_ready",
    "put",
    "FatalBatchError",
    "send_recorded",
    "send_pages",
    "start_progress",
    "COUNT_BUDGET",
    "count_first",
    "scan_finished",
    "check_outputs",
    "retry_notices",
    "retry_text",
]

#: State and report live in this hidden folder (scans skip hidden folders).
STATE_DIR = ".cvbulk"
PAGE = 256  # GetImages: "take ... limited to 256"
#: Seconds a job's source may spend counting its items up front (rclone counts before a transfer too);
#: a tree too large to count in that time shows its total as unknown until the scan ends.
COUNT_BUDGET = 3.0

T = TypeVar("T")
R = TypeVar("R")


class ProgressSink(Protocol):
    """What a job tells about its progress. Every call is cheap and synchronous (the display draws on
    its own time); a job calls ``started`` once, then the others, then ``finished`` once.

    Totals: a job that knows its total up front passes it to ``started``. A job that scans lazily passes
    None, reports what its scan finds with ``add_total`` and calls ``scan_done`` when the scan is over
    (the total is then final); before that, ``count_with`` (optional, see :func:`count_first`) lets the
    display count the items in a worker thread, so its first line can already show the final total.
    """

    def started(self, total: int | None) -> None:
        """The run began; ``total`` items when known up front (None: found as the scan goes)."""

    def add_total(self, n: int) -> None:
        """``n`` more items found (a lazy scan)."""

    def advanced(self, *, ok: int = 0, failed: int = 0, skipped: int = 0, nbytes: int = 0) -> None:
        """Items finished: succeeded, failed, skipped (nothing to do); bytes sent for them."""

    def phase(self, text: str) -> None:
        """What the job does now, in a few words ("creating 40 tags ...", a retry): shown as a line of its own."""

    def watch_concurrency(self, read: Callable[[], int | None]) -> None:
        """How to read the requests in flight the service allows now (the client's adaptive limit)."""

    def finished(self) -> None:
        """The run is over (successfully or not)."""


class NullProgress:
    """A :class:`ProgressSink` that shows nothing (library use, tests)."""

    def started(self, total: int | None) -> None:
        pass

    def add_total(self, n: int) -> None:
        pass

    def advanced(self, *, ok: int = 0, failed: int = 0, skipped: int = 0, nbytes: int = 0) -> None:
        pass

    def phase(self, text: str) -> None:
        pass

    def watch_concurrency(self, read: Callable[[], int | None]) -> None:
        pass

    def scan_done(self) -> None:
        pass

    def finished(self) -> None:
        pass


def start_progress(
    progress: ProgressSink | None,
    total: int | None,
    client: Any,
    group: Any = None,
    *,
    source: Any = None,
    include_hidden: bool = False,
) -> None:
    """Tell ``progress`` the run began with ``total`` items, and how to read the client's adaptive
    concurrency for ``group`` (default: training calls). With ``total`` None and a ``source`` (an
    ``ImageSource``), the display may count the source's items first (:func:`count_first`)."""
    if progress is None:
        return
    progress.started(total)
    if total is None and source is not None:
        count_first(progress, source, include_hidden=include_hidden)
    pacer = getattr(client, "pacer", None)
    if pacer is not None:
        from ..client import ApiGroup

        chosen = group if group is not None else ApiGroup.TRAINING
        progress.watch_concurrency(lambda: pacer.concurrency(chosen))


def count_first(
    progress: ProgressSink | None, source: Any, *, include_hidden: bool = False, budget: float = COUNT_BUDGET
) -> None:
    """Hand the display a blocking count of ``source``'s items (its optional ``count_within(seconds,
    include_hidden=...)``, None when it gives up) to run in a worker thread while the job starts.

    Both are optional: a sink without ``count_with`` (a library user's) costs nothing, and a source
    without ``count_within`` (or one that cannot count cheaply, a blob container) leaves the total
    unknown until :func:`scan_finished`.
    """
    counter = getattr(source, "count_within", None)
    take = getattr(progress, "count_with", None)
    if counter is None or take is None:
        return
    def count() -> int | None:
        try:
            return counter(budget, include_hidden=include_hidden)
        except TypeError:  # a source whose count_within takes the budget alone (a blob container)
            return counter(budget)

    take(count)


def scan_finished(progress: ProgressSink | None) -> None:
    """The job's scan is over: the items it reported with ``add_total`` are the final total."""
    done = getattr(progress, "scan_done", None)
    if done is not None:
        done()


class JournalCalls:
    """Mixin for a run dataclass with ``journal_lock: anyio.Lock``."""

    journal_lock: anyio.Lock

    async def journal_call(self, fn: Any, *args: Any) -> Any:
        # SQLite blocks: one call at a time, in a worker thread.
        async with self.journal_lock:
            return await anyio.to_thread.run_sync(fn, *args)


async def open_journal(
    path: Path, *, job: str, fingerprint: dict[str, Any], hint: str = "pass {opt:state} to use another state file"
) -> Journal:
    """Open the state file in a worker thread; another run's (or a damaged) state file is a
    :class:`StateFileError` that ends with ``hint``."""
    try:
        return await anyio.to_thread.run_sync(partial(Journal.open, path, job=job, fingerprint=fingerprint))
    except JournalMismatch as exc:
        raise StateFileError(f"{exc} ({hint})") from None


def unwrap(group: BaseExceptionGroup) -> BaseException | None:
    """The error that stopped a task group: its first leaf that is not a cancellation (the others were
    cancelled because of it). The one place exception groups are unwrapped."""
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


class RunStopped(FatalRunError):
    """The run stopped before its end on a run-wide error it could report on (storage that stopped answering, or
    refused access, mid-run): the job's report is written (every outcome so far, ``stopped``: why, and how many
    listed items got no outcome). ``result`` is the job's result (``result.report``), ``error`` the error; the
    message is the error's one line, so a front end that knows only :class:`FatalRunError` shows it as ever."""

    def __init__(self, error: BaseException, result: Any) -> None:
        template = error.template if isinstance(error, PipelineError) else _braced(" ".join(str(error).split()))
        super().__init__(template)
        self.error = error
        self.result = result


def _braced(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


class Stop:
    """How a job stops early and still reports. ``when(exc)``: the :class:`FatalRunError` a stage's error ends the
    run with, report first (None: any other error, raised as ever); ``check()`` (optional): the same after stages
    that ended (storage found not answering at the end of a run whose listing was done). :func:`run_job` sets
    ``error``; the job's ``finish`` puts :meth:`report` in its report."""

    def __init__(
        self,
        when: Callable[[BaseException], FatalRunError | None],
        check: Callable[[], FatalRunError | None] | None = None,
    ) -> None:
        self.when = when
        self.check = check
        self.error: FatalRunError | None = None

    def report(self, not_reached: int | None, **more: Any) -> dict[str, Any] | None:
        """The report's ``stopped`` (None when the run did not stop): the one-line reason, and how many items
        the run listed but did not reach (no outcome this run: the same command takes them up)."""
        if self.error is None:
            return None
        return {"reason": str(self.error), "not_reached": not_reached, **more}


async def run_job(
    run: JournalCalls | None,
    journal: Journal | None,
    progress: ProgressSink | None,
    stages: Callable[[], Awaitable[Any]],
    finish: Callable[[], Awaitable[T]] | None = None,
    *,
    stop: Stop | None = None,
) -> T:
    """Run a job's ``stages`` (which open their own task group), then ``finish`` (without one: the stages'
    own answer is the result); always close the journal (if any) and tell the progress sink the run is over.

    A failing stage surfaces as its own exception, not as the task group's exception group. With ``stop``, an
    error it names still runs ``finish`` (which writes the report, ``stop.report`` in it), then raises
    :class:`RunStopped` with finish's result; a cancellation (Ctrl-C) never counts as one.
    """
    sink = progress if progress is not None else NullProgress()
    try:
        answer: Any = None
        try:
            try:
                answer = await stages()
            except BaseExceptionGroup as group:
                first = unwrap(group)
                if first is not None:
                    raise first from None
                raise
        except Exception as exc:
            stopped = stop.when(exc) if stop is not None else None
            if stopped is None:
                raise
            stop.error = stopped  # type: ignore[union-attr]  # stopped is None without a stop
        if stop is not None and stop.error is None and stop.check is not None:
            stop.error = stop.check()
        result = answer if finish is None else await finish()
        if stop is not None and stop.error is not None:
            raise RunStopped(stop.error, result) from None
        return result
    finally:
        sink.finished()
        if journal is not None:
            with anyio.CancelScope(shield=True):  # the state file must be closed even when cancelled
                if run is not None:
                    await run.journal_call(journal.close)
                else:
                    await anyio.to_thread.run_sync(journal.close)


def take_ready(first: T, receive: ObjectReceiveStream[T], limit: int) -> list[T]:
    """``first`` and what else is already waiting, up to ``limit`` items, without waiting for more:
    under load the chunks grow (one journal transaction for many), when idle each goes out at once."""
    chunk = [first]
    while len(chunk) < limit:
        try:
            chunk.append(receive.receive_nowait())  # type: ignore[attr-defined]  # a memory stream's
        except (anyio.WouldBlock, anyio.EndOfStream):
            break
    return chunk


async def put(send: ObjectSendStream[T], item: T) -> None:
    """``send.send(item)``, without its checkpoint when the buffer has room: a memory stream's ``send`` first
    yields to the event loop, a whole loop iteration per item, which at hundreds of images a second and a few
    stages each is a large share of the client's CPU. Waits (back-pressure) only when the buffer is full."""
    try:
        send.send_nowait(item)  # type: ignore[attr-defined]  # a memory stream's
    except (anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
        # full: wait for room; closed: ``send`` checkpoints first, so a cancelled run ends as cancelled, not as
        # a broken stream (its receiver went with the cancel)
        await send.send(item)


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
    send: Callable[[], Awaitable[list[R]]],
    entry: Callable[[R], JournalEntry],
    on_fatal: Callable[[list[R]], None] | None = None,
) -> list[R]:
    """Send one batch between two journal writes; returns its outcomes.

    Intent first: a kill from here on leaves these items ``sending``, re-sent on resume. The outcome is
    on disk before the caller takes its next batch; a fatal error records the batch's outcomes (then tells
    ``on_fatal`` which, for the run's counts), then raises the error itself.
    """
    await run.journal_call(journal.mark_sending, intent)
    try:
        outcomes = await send()
    except FatalBatchError as exc:
        await run.journal_call(journal.record, [entry(o) for o in exc.outcomes])
        if on_fatal is not None:
            on_fatal(exc.outcomes)
        raise exc.error from None
    await run.journal_call(journal.record, [entry(o) for o in outcomes])
    return outcomes


async def send_pages(images: AsyncIterator[Image], page_send: ObjectSendStream[list[Image]]) -> None:
    """Regroup the client's image iterator into pages of ``PAGE`` (export, migrate)."""
    async with page_send:
        page: list[Image] = []
        async for image in images:
            page.append(image)
            if len(page) >= PAGE:
                await page_send.send(page)
                page = []
        if page:
            await page_send.send(page)


# -- before any request -----------------------------------------------------------------------------

_SQLITE_MAGIC = b"SQLite format 3\x00"


def check_outputs(*, report: Path | None = None, state: Path | None = None, output: Path | None = None) -> None:
    """Check, before a job sends anything, that the files it will write can be written: a report, a state
    file (which must also be a SQLite file when it exists), a prediction output (which must be a file cvbulk
    can read back: :func:`cvbulk.pipeline.output.check_output_file`).

    Raises :class:`ConfigError` (:class:`StateFileError` for the state file) with one line naming the path.
    Never creates or modifies anything.
    """
    for what, path in (("report", report), ("state file", state), ("output file", output)):
        if path is not None:
            _check_writable(Path(path), what)
    if state is not None:
        _check_state_file(Path(state))
    if output is not None:
        from .output import OutputFileError, check_output_file

        try:
            check_output_file(output)
        except OutputFileError as exc:
            raise ConfigError(str(exc)) from None


def _check_writable(path: Path, what: str) -> None:
    # The file is replaced atomically (report) or grows journal files beside it (SQLite's WAL): its folder
    # must take new files, whether or not the file is there already.
    if path.is_dir():
        raise ConfigError(f"cannot write the {what} {path}: it is a folder")
    if path.exists() and not os.access(path, os.W_OK):
        raise ConfigError(f"cannot write the {what} {path}: permission denied")
    folder = path.parent
    while not folder.exists():
        if folder.is_symlink():  # a dangling link: mkdir would fail on it
            raise ConfigError(f"cannot create the {what} {path}: {folder} is a broken link")
        folder = folder.parent
    if not folder.is_dir():
        raise ConfigError(f"cannot create the {what} {path}: {folder} is not a folder")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise ConfigError(f"cannot write the {what} {path}: permission denied on the folder {folder}")


def _check_state_file(path: Path) -> None:
    try:
        with open(path, "rb") as f:
            head = f.read(len(_SQLITE_MAGIC))
    except FileNotFoundError:
        return
    except OSError as exc:
        raise StateFileError(f"cannot read the state file {path}: {exc.strerror or exc}") from None
    if head and head != _SQLITE_MAGIC:
        raise StateFileError(
            f"state file {path} is not a cvbulk state file (not a SQLite database; left untouched) "
            "(pass {opt:state} to use another state file)"
        )


# -- retries on screen ------------------------------------------------------------------------------


def retry_text(event: Any) -> str:
    """One line for a client's ``RetryEvent``: what went wrong on which call, how long the client waits,
    and the number of the attempt it makes next (``event.attempt`` is the one that just failed)."""
    status = f" (HTTP {event.status})" if getattr(event, "status", None) else ""
    what = {"throttled": "throttled", "server error": "server error", "connection": "connection trouble"}.get(
        str(event.cause), str(event.cause)
    )
    return f"{what}{status} on {event.operation}: trying again in {event.wait_s:.1f} s (attempt {event.attempt + 1})"


@contextmanager
def retry_notices(progress: ProgressSink | None, *clients: Any) -> Iterator[None]:
    """While a job runs, each client's retry waits reach ``progress.phase`` as one line
    (``throttled (HTTP 429) on CreateImagesFromData: trying again in 1.0 s (attempt 3)``); a hook already set still hears them.
    The clients' own hooks are put back afterwards."""
    if progress is None:
        yield
        return
    saved: list[tuple[Any, Any]] = []
    for client in clients:
        if client is None or not hasattr(client, "on_retry"):
            continue
        previous = client.on_retry

        def hook(event: Any, previous: Any = previous) -> None:
            progress.phase(retry_text(event))
            if previous is not None:
                previous(event)

        saved.append((client, previous))
        client.on_retry = hook
    try:
        yield
    finally:
        for client, previous in saved:
            client.on_retry = previous
