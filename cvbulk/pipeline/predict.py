"""``cvbulk predict``: score a tree of images against a published iteration, resumably.

The pipeline is scan -> prepare -> score -> record (``_predict_engine.ScoreStages`` run by ``engine.run_job``): one prediction request
per image, many in flight under the client's pacer, rows written to the output as results arrive.

Resume rule. The output file says which images are done: ``existing_keys(output)`` gives the paths
that already have a row, and those are not scored again unless the file changed since (the journal's
size and mtime, a blob's ETag, differ from the scan's: ``_predict_resume``). A changed image's new row
is appended and its old row removed by compacting the output at the end of the run ("last row of a
path wins"), so no path appears twice, even after a ``kill -9``. Rows are flushed *before* the
journal records their outcome. The journal (state file) keeps every file's outcome, reason and
fixes across runs for the report; transient errors
(the service kept failing past the retry budget) are journalled but get no row, so that the next run
retries them and appends their row then.

Columns of the classification CSV (stable for a whole job):
1. appending to an existing CSV: its header (the writer keeps it);
2. with training credentials: every tag of the project (GetTags), sorted by name;
3. otherwise: the tags of the first successful prediction, sorted by name (a classification answer
   carries a probability for every tag of the iteration). Rows that come before it (bad input) wait
   in memory until it arrives.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio

from ..client._body import FileBody, ImageBody
from ..client._errors import BadRequestError
from ._blob_send import VIA_FALLBACK
from ._naps import naps
from ._predict_engine import (
    ERROR,
    FAILED,
    PREDICTED,
    REJECTED,
    SKIPPED,
    EngineStats,
    Outcome,
    Prepared,
    ScoreStages,
    WorkItem,
)
from ._predict_resume import CHANGED, DONE, PredictResume
from ._predict_rows import RowMaker, existing_tag_columns, output_format
from ._shared import is_uuid
from .engine import (
    ProgressSink,
    Stop,
    check_outputs,
    open_journal,
    retry_notices,
    run_job,
    scan_finished,
    start_progress,
)
from .errors import ConfigError
from .journal import Journal, JournalEntry
from .output import OutputFileError, check_output_file, open_prediction_writer
from .prepare import PREDICTION_LIMITS, Rejected, prepare_image
from .report import build_report, write_report
from .results import PredictResult
from .scan import ScanProblem, aiter_scan
from .sources import LocalFolder, source_stop, state_key

if TYPE_CHECKING:
    from ..client import PredictionClient, TrainingClient

__all__ = ["PredictOptions", "PredictResult", "run_predict", "default_state_path", "default_report_path"]

JOB = "predict"


@dataclass(frozen=True)
class PredictOptions:
    """What to score, where the results go, and how hard to push."""

    root: Path
    project: str  # a project id, or (with a training client) its exact name
    published_name: str
    detect: bool = False
    store: bool = False  # keep the images on the service (lower rate limit)
    output: Path = Path("predictions.csv")  # .jsonl / .ndjson: JSON lines, else CSV
    top: int | None = None  # keep the K best predictions (JSONL and detection rows)
    threshold: float | None = None  # drop predictions under this probability
    state: Path | None = None  # None: next to the output (default_state_path)
    report: Path | None = None  # None: next to the output (default_report_path)
    max_concurrency: int = 32  # scoring workers; the client's adaptive limit may hold fewer
    prepare_workers: int | None = None  # None: one per core
    include_hidden: bool = False
    application: str | None = None  # the service's optional "application" tag for the requests
    # Where the images come from (default: the folder ``root``): e.g. ``sources.BlobFolder`` for a container.
    source: Any = None


@dataclass(slots=True)
class UrlImage:
    """An image the service fetches itself: ``url`` holds a SAS token (never stored or printed);
    ``went`` is set when it had to go as bytes after all."""

    url: str = field(repr=False)
    item: Any
    went: str | None = None


def default_state_path(output: Path) -> Path:
    """The state file of an output: ``results.csv`` -> ``results.csv.state``."""
    return output.with_name(output.name + ".state")


def default_report_path(output: Path) -> Path:
    return output.with_name(output.name + ".report.json")


async def run_predict(
    prediction: PredictionClient,
    training: TrainingClient | None,
    options: PredictOptions,
    *,
    progress: ProgressSink | None = None,
) -> PredictResult:
    """Score every image under ``options.root``; write rows, journal, report. See the module doc.

    ``prediction`` is a PredictionClient (its pacer sets the pace), ``training`` an optional
    TrainingClient used to resolve a project name and list its tags. Run-wide failures (wrong key,
    unknown project or published name, the service down) raise; per-file failures are outcomes.
    The clients' retry waits (a 429, a 5xx) reach ``progress.phase``.
    """
    with retry_notices(progress, prediction, training):
        return await _run_predict(prediction, training, options, progress)


async def _run_predict(
    prediction: PredictionClient,
    training: TrainingClient | None,
    options: PredictOptions,
    progress: ProgressSink | None,
) -> PredictResult:
    _check(options)
    root = options.root
    output = options.output
    try:  # before anything is sent: an output cvbulk did not write is left untouched
        await anyio.to_thread.run_sync(check_output_file, output)
    except OutputFileError as exc:
        raise ConfigError(str(exc).replace("{", "{{").replace("}", "}}")) from None
    fmt = output_format(output)
    state_path = options.state or default_state_path(output)
    check_outputs(report=options.report, state=state_path)  # before any request, with the path named
    project_id, project_name, tag_names = await _resolve_project(training, options.project, options.detect)

    fingerprint = {
        "root": str(root.resolve()) if options.source is None else state_key(options.source),
        "project_id": project_id,
        "published_name": options.published_name,
        "mode": "detect" if options.detect else "classify",
        "output": str(output.resolve()),
    }
    journal = await open_journal(
        state_path, job=JOB, fingerprint=fingerprint, hint="use another {opt:state} or {opt:output}"
    )

    stop = source_stop(options.source)  # storage gone mid-run: the report first, then the one line
    try:
        stages, finish = await _setup(
            prediction, options, journal, fmt, project_id, project_name, tag_names, state_path, progress, stop
        )
    except BaseException:
        with anyio.CancelScope(shield=True):
            await anyio.to_thread.run_sync(journal.close)
        raise
    return await run_job(None, journal, progress, stages, finish, stop=stop)


async def _setup(
    prediction: Any,
    options: PredictOptions,
    journal: Journal,
    fmt: str,
    project_id: str,
    project_name: str | None,
    tag_names: list[str] | None,
    state_path: Path,
    progress: ProgressSink | None,
    stop: Stop,
) -> tuple[Callable[[], Awaitable[Any]], Callable[[], Awaitable[PredictResult]]]:
    """The run's stages (for ``engine.run_job``) and what builds its result once they are done."""
    output = options.output
    appending = output.exists() and output.stat().st_size > 0
    # The paths that already have a row (read in a thread: it may be large); a killed run's re-scored rows compacted.
    resume = await PredictResume.open(output, journal, appending)

    rows = RowMaker(
        csv_classification=fmt == "csv" and not options.detect, top=options.top, threshold=options.threshold
    )
    if appending and fmt == "csv" and not options.detect:
        columns = existing_tag_columns(output)
        if columns is not None:
            tag_names = columns  # the file's header wins: one job, one set of columns
    try:
        sink = await anyio.to_thread.run_sync(
            lambda: _Sink(output, options.detect, fmt == "csv" and not options.detect, tag_names, appending, rows)
        )
    except ValueError as exc:  # an existing file with other columns
        raise ConfigError(f"cannot append to {output}: {exc}") from None
    counters = _RunCounters()

    src = options.source
    entries = (
        aiter_scan(options.root, include_hidden=options.include_hidden)
        if src is None
        else src.entries(include_hidden=options.include_hidden)
    )

    async def source() -> AsyncIterator[WorkItem | Outcome]:
        async for entry, verdict in resume.verdicts(entries):  # a row and unchanged: done; changed: again
            if progress is not None:
                progress.add_total(1)
            problem = isinstance(entry, ScanProblem)
            if not problem:
                counters.seen += 1  # images found; a scan problem is no image
            if verdict == DONE:
                counters.already_done += 1
                if progress is not None:
                    progress.advanced(skipped=1)
            elif isinstance(entry, ScanProblem):
                # Left out by rule (hidden, not an image file): skipped; could not be read: rejected.
                yield Outcome(entry.relpath, REJECTED if entry.needs_attention else SKIPPED, reason=entry.reason)
            elif src is not None:
                counters.rescored_changed += verdict == CHANGED
                yield WorkItem(entry.relpath, None, entry.size, entry.mtime_ns, entry=entry)
            else:
                counters.rescored_changed += verdict == CHANGED
                yield WorkItem(entry.relpath, entry.path, entry.size, entry.mtime_ns)
        scan_finished(progress)  # the items reported so far are the total

    def prepare(item: WorkItem) -> Prepared | Outcome:
        assert item.path is not None
        result = prepare_image(item.path, limits=PREDICTION_LIMITS)
        if isinstance(result, Rejected):
            return Outcome(item.key, REJECTED, item.size, item.mtime_ns, reason=result.reason)
        # Bytes that are the file's own are read again when the request is written (not held meanwhile).
        data = FileBody(item.path, result.size, item.path.name) if result.passed_through else result.data
        return Prepared(item, data, result.sha256, tuple(result.fixes))

    send = prediction.detect_image if options.detect else prediction.classify_image
    send_url: Any = getattr(prediction, "detect_image_url" if options.detect else "classify_image_url", None)

    async def score(data: bytes | ImageBody | UrlImage) -> Any:
        if isinstance(data, UrlImage):
            try:
                return await send_url(
                    project_id, options.published_name, data.url, store=options.store,
                    application=options.application,
                )
            except BadRequestError as exc:
                if src.via != "auto" or exc.code != "BadRequestImageUrl":
                    raise
                data.went = VIA_FALLBACK  # the service cannot reach the blob: cvbulk reads it
                data = await _fallback_bytes(src, data.item)
            finally:
                if isinstance(data, UrlImage):
                    src.take_url_item(data.item.relpath)
        return await send(
            project_id, options.published_name, data, store=options.store, application=options.application
        )

    def record(batch: Sequence[Outcome]) -> None:
        # Rows first, flushed; then the journal. A kill in between leaves a row the journal does
        # not know, which the next run finds through existing_keys: nothing is scored twice.
        # A re-scored path's old row goes at the end (resume.finish), or at the next start after a kill.
        sink.write(batch)
        journal.record([_journal_entry(o) for o in batch])

    group = _pacer_group(prediction, options.store)

    def on_recorded(batch: Sequence[Outcome]) -> None:
        if progress is None:
            return
        ok = skipped = nbytes = 0
        for o in batch:
            ok += o.status == PREDICTED
            skipped += o.status == SKIPPED
            nbytes += o.nbytes
        # the counts of a batch at once (they add up): one call, not one per image
        progress.advanced(ok=ok, failed=len(batch) - ok - skipped, skipped=skipped, nbytes=nbytes)

    # The total: counted up front when quick (the source's count_within), else found by the lazy scan.
    start_progress(
        progress, None, prediction, group, source=LocalFolder(options.root) if src is None else src,
        include_hidden=options.include_hidden,
    )

    batched = getattr(src, "aprepare_many", None) is not None  # a container whose checks go out together
    # A paced run from a container serves the network once per rate-limiter tick (see ``_naps``); an answer then
    # waits up to a tick before it is read, so the recorder lingers that much less: a kill still loses about a
    # second of them. Not a folder: its preparers hand each image to a worker thread, and a hand-back once a
    # tick would hold two preparers to 8 images a second.
    quantum = _pacer_tick(prediction, group) if src is not None else 0.0
    scoring = ScoreStages(
        prepare=prepare,
        score=score,
        record=record,
        on_recorded=on_recorded,
        workers=options.max_concurrency,
        prepare_workers=options.prepare_workers,
        aprepare=partial(_prepare_sourced, src) if src is not None else None,
        aprepare_many=partial(_prepare_sourced_many, src) if batched else None,
        # batched: two checkers of 16 keep 32 checks in flight (as many images as could be held before)
        prepare_tasks=2 if batched else getattr(src, "prepare_tasks", None),
        prepare_batch=16,
    )
    started = time.time()
    stats_before = _client_stats(prediction)
    finished = started

    async def stages() -> None:
        nonlocal finished
        try:
            with naps(quantum) as napping:
                if napping:  # the loop sleeps between ticks: record on it, a tick's worth less lingering
                    scoring.record_linger = max(quantum, 1.0 - quantum)
                    scoring.record_inline = True
                await scoring.run(source())
        finally:
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(sink.close)
                await resume.finish()  # one row per path: a re-scored path's old row goes (also on Ctrl-C)
        finished = time.time()

    async def finish() -> PredictResult:
        report = await anyio.to_thread.run_sync(
            lambda: _build_report(
                options, fmt, project_id, project_name, state_path, journal, scoring.stats, counters,
                started, finished, _stats_delta(stats_before, _client_stats(prediction)), sink.tag_names,
                stop.report(getattr(src, "listed", 0) - counters.already_done - sum(scoring.stats.statuses.values())),
            )
        )
        report_path = options.report or default_report_path(output)
        await anyio.to_thread.run_sync(write_report, report_path, report)
        report["report_file"] = str(report_path)
        # Exit 1 while the job holds a failed file (this run's or an earlier run's): its row in the
        # output says "rejected" / "failed", or (a transient error) it has no row yet.
        ok = not (report["failed"] or report["extra"]["job_failed"])
        return PredictResult(
            ok=ok, report=report, state_file=Path(state_path), report_file=Path(report_path), output=Path(output)
        )

    return stages, finish


# -- project and tags ---------------------------------------------------------------------------


async def _resolve_project(
    training: Any | None, ref: str, detect: bool
) -> tuple[str, str | None, list[str] | None]:
    """(project id, name or None, tag names or None) for a project id or name."""
    if training is None:
        if not is_uuid(ref):
            raise ConfigError(
                f"{{opt:project}} {ref!r} is not a project id: without training credentials "
                "({opt:training}) the project must be given by id"
            )
        return ref.strip(), None, None
    from .project import is_detection_domain, project_domain, resolve_project

    project = await resolve_project(training, ref)
    domain = await project_domain(training, project)
    if domain is not None and is_detection_domain(domain) != detect:
        # Caught before the first image: otherwise every image would fail the same way.
        hint = "add {opt:detect}" if not detect else "drop {opt:detect}"
        kind = "an object-detection" if not detect else "a classification"
        raise ConfigError(f"project {project.name!r} is {kind} project: {hint}")
    tags = await training.get_tags(project.id)
    return str(project.id), project.name, sorted({t.name for t in tags})


def _check(options: PredictOptions) -> None:
    if options.source is None and not options.root.is_dir():
        raise ConfigError(f"{{opt:root}} {str(options.root)!r} is not a folder")
    if options.top is not None and options.top < 1:
        raise ConfigError("{opt:top} must be at least 1")
    if options.threshold is not None and not 0.0 <= options.threshold <= 1.0:
        raise ConfigError("{opt:threshold} must be between 0 and 1")
    if options.max_concurrency < 1:
        raise ConfigError("{opt:max_concurrency} must be at least 1")
    if not options.published_name.strip():
        raise ConfigError("{opt:published_name} must not be empty")


# -- recording ----------------------------------------------------------------------------------


class _Sink:
    """The output writer, opened once the columns are known (see the module doc)."""

    def __init__(
        self,
        path: Path,
        detect: bool,
        needs_tags: bool,
        tag_names: list[str] | None,
        appending: bool,
        rows: RowMaker,
    ) -> None:
        self.path = path
        self.detect = detect
        self.tag_names = tag_names
        self.appending = appending
        self.rows = rows
        self.writer: Any = None
        self.pending: list[Outcome] = []
        # Only a classification CSV needs the tag names before its first row.
        if not needs_tags or tag_names is not None:
            self._open(tag_names or [])

    def _open(self, tag_names: list[str]) -> None:
        self.tag_names = tag_names
        self.writer = open_prediction_writer(
            self.path, tag_names=tag_names, detect=self.detect, append=self.appending
        )

    def write(self, batch: Sequence[Outcome]) -> None:
        final = [o for o in batch if o.final]
        if self.writer is None:
            first = next((o for o in final if o.ok), None)
            if first is None:
                self.pending.extend(final)  # bad input before the first result: few and small
                return
            self._open(sorted({p.tag_name for p in first.prediction.predictions}))
            final = self.pending + final
            self.pending = []
        for outcome in final:
            self.writer.write(self.rows.row(outcome))
        self.writer.flush()

    def close(self) -> None:
        if self.writer is None and self.pending:
            # Nothing was scored, so no tag is known: a CSV of error rows without tag columns.
            self._open([])
            assert self.writer is not None
            pending, self.pending = self.pending, []
            for outcome in pending:
                self.writer.write(self.rows.row(outcome))
        if self.writer is not None:
            self.writer.close()


async def _prepare_sourced(src: Any, item: WorkItem, cpu: anyio.CapacityLimiter) -> Prepared | Outcome:
    """An image from a source other than a folder (a container): by URL when it passes the header check."""
    aprepare = getattr(src, "aprepare", None)
    if aprepare is not None:
        result = await aprepare(item.entry, PREDICTION_LIMITS, (), cpu)
    else:
        result = await anyio.to_thread.run_sync(src.prepare, item.entry, PREDICTION_LIMITS, (), limiter=cpu)
    return _sourced(src, item, result)


async def _prepare_sourced_many(
    src: Any, items: Sequence[WorkItem], cpu: anyio.CapacityLimiter
) -> list[Prepared | Outcome]:
    """Several images of a container checked together (their header reads go out at once)."""
    results = await src.aprepare_many([item.entry for item in items], PREDICTION_LIMITS, [()] * len(items), cpu)
    return [_sourced(src, item, result) for item, result in zip(items, results)]


def _sourced(src: Any, item: WorkItem, result: Any) -> Prepared | Outcome:
    if isinstance(result, Rejected):
        # a source's transient trouble is "error": a resume retries it
        return Outcome(item.key, result.status, item.size, item.mtime_ns, reason=result.reason)
    via = getattr(result, "via", None)
    url = getattr(result, "url", None)
    if url:
        return Prepared(item, UrlImage(url, item.entry), result.sha256, (), via=via)
    data = src.body(item.entry, result.size) if result.passed_through else result.data
    return Prepared(item, data, result.sha256, tuple(result.fixes), via=via)


async def _fallback_bytes(src: Any, item: Any) -> bytes:
    result = await src.prepare_fallback(item, PREDICTION_LIMITS, ())
    if isinstance(result, Rejected):
        raise BadRequestError(f"the service could not fetch the blob's URL, and its bytes: {result.reason}", status=400)
    return result.data


def _journal_entry(o: Outcome) -> JournalEntry:
    extra: dict[str, Any] | None = None
    if o.ok and o.prediction is not None:
        best = max(o.prediction.predictions, key=lambda p: p.probability or 0.0, default=None)
        if best is not None:
            extra = {"top_tag": best.tag_name, "top_probability": round(float(best.probability), 6)}
    if o.via:
        extra = {**(extra or {}), "via": o.via}
    return JournalEntry(
        key=o.key,
        size=o.size or None,
        mtime_ns=o.mtime_ns or None,
        sha256=o.sha256,
        status=o.status,
        reason=o.reason,
        fixes=o.fixes,
        attempts=1,
        extra=extra,
    )


# -- report -------------------------------------------------------------------------------------


@dataclass
class _RunCounters:
    seen: int = 0  # image files the scan found
    already_done: int = 0  # skipped: a row is already in the output
    rescored_changed: int = 0  # had a row, but the file changed since it was scored: scored again


def _pacer_group(prediction: Any, store: bool) -> Any:
    try:
        from ..client import ApiGroup
    except ImportError:  # pragma: no cover - the client is always there in a full install
        return None
    if getattr(prediction, "pacer", None) is None:
        return None
    return ApiGroup.PREDICTION_STORE if store else ApiGroup.PREDICTION_NOSTORE


def _pacer_tick(prediction: Any, group: Any) -> float:
    """The seconds between the ticks the pacer releases predictions on (0: none, each at its own time)."""
    pacer = getattr(prediction, "pacer", None)
    limiter = pacer.limiter(group) if pacer is not None and group is not None else None
    return float(getattr(limiter, "tick", 0.0) or 0.0)


def _client_stats(prediction: Any) -> dict[str, Any]:
    stats = getattr(prediction, "stats", None)
    return stats.snapshot() if stats is not None else {}


def _stats_delta(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    out = dict(after)
    for name, value in after.items():
        if isinstance(value, (int, float)) and isinstance(before.get(name), (int, float)):
            out[name] = value - before[name]
    return out


def _build_report(
    options: PredictOptions,
    fmt: str,
    project_id: str,
    project_name: str | None,
    state_path: Path,
    journal: Journal,
    stats: EngineStats,
    counters: _RunCounters,
    started: float,
    finished: float,
    client: dict[str, Any],
    tag_names: list[str] | None,
    stopped: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """The run's report (report.py's shape) with the job-wide picture in ``extra``.

    ``counts`` are this run's outcomes (``skipped``: already in the output), so that images/s is
    this run's speed; ``failures`` names every failed file of the job, this run's and earlier ones,
    since they are what the exit status speaks of.
    """
    counts = dict(stats.statuses)  # this run's outcomes; what an earlier run did is "already_done"
    job_counts = journal.counts()
    source_report = getattr(options.source, "report", None)
    return build_report(
        job=JOB,
        started=started,
        finished=finished,
        counts=counts,
        failures=journal.failures(),
        client_stats=client or None,
        nbytes=stats.bytes_sent,
        stopped=stopped,
        extra={
            "root": str(options.root) if options.source is None else options.source.location,
            "project": {"id": project_id, "name": project_name},
            "published_name": options.published_name,
            "mode": "detect" if options.detect else "classify",
            "store": options.store,
            "output": {"path": str(options.output), "format": fmt, "tag_columns": tag_names},
            "state": str(state_path),
            "files_seen": counters.seen,
            "already_done": counters.already_done,
            "rescored_changed": counters.rescored_changed,
            **({"source": source_report()} if source_report is not None else {}),
            "job_counts": job_counts,
            "job_failed": _job_failed(job_counts),
        },
    )


def _job_failed(job_counts: dict[str, int]) -> int:
    return sum(job_counts.get(s, 0) for s in (REJECTED, FAILED, ERROR))
