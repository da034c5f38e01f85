"""``cvbulk upload``: a labelled image tree into a Custom Vision project, resumable, at the rate limit.

scan -> plan -> prepare -> batch -> send -> record, joined by bounded memory object streams:

- *scan* walks the tree lazily in a worker thread (``scan.aiter_scan``); *plan* looks each chunk of
  files up in the journal and the label source in one worker-thread hop, and drops what is done.
- *prepare* checks / fixes images off the event loop, bounded to the core count. Their bytes are not kept:
  an image that passes through is read again from its file when its request is written (a ``FileBody``);
  a fixed one is spooled to a temporary file first.
- *batch* groups them under 64 images / 20 tags / a byte budget (``batch.py``).
- *send*: N senders share the client, whose Pacer holds the tier's rate and adapts the concurrency.
  Each sender marks its batch ``sending`` in the journal before the request and records every
  image's outcome in one transaction after it, before taking the next batch: a run killed at any
  moment resumes without losing an image or creating one twice (the prepared bytes are
  deterministic, so a re-sent image comes back ``OKDuplicate`` and counts as ours).
- *record*: per-file outcomes that need no request (skipped, rejected) are written in chunks.

Nothing per file is kept in memory beyond the bounded streams: the journal is the memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import time
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ..client._body import FileBody, ImageBody
from .batch import DEFAULT_BATCH_BYTES, DEFAULT_LINGER, Batch, Batcher, BatchItem, TaggedRegion, batch_stream
from .engine import (
    STATE_DIR,
    JournalCalls,
    ProgressSink,
    count_first,
    open_journal,
    run_job,
    scan_finished,
    send_recorded,
    take_ready,
)
from .errors import ConfigError, ProjectNotFound
from .journal import (
    DUPLICATE,
    FAILURE_STATUSES,
    REJECTED,
    SENDING,
    SKIPPED,
    UPLOADED,
    Journal,
    JournalEntry,
    needs_work,
)
from .labels import LabelProblem, Labels, LabelSource, open_label_source
from .prepare import TRAINING_LIMITS, ImageLimits, PreparedImage, Rejected
from .project import (
    TAG_LIMITS,
    TagMap,
    ensure_tags,
    find_or_create_project,
    is_detection_domain,
    project_domain,
    resolve_project,
)
from .report import build_report, write_report
from .results import UploadResult
from .scan import ScanEntry, ScanProblem
from .send import ImageSender, SendOutcome
from .sources import ImageSource, LocalFolder

if TYPE_CHECKING:
    from ..client import Project, TrainingClient

__all__ = [
    "UploadOptions",
    "UploadResult",
    "run_upload",
    "default_state_path",
    "default_report_path",
    "STATE_DIR",
]

NO_LABEL = "no label"
_PLAN_CHUNK = 64  # files looked up in the journal per worker-thread hop
_MAX_LISTED = 1000  # rejects listed by a dry run (the counts stay exact)


# Batch bytes the senders may hold at once. Holding the rate against a slow service takes
# calls/s x latency requests in flight: at S0 (10/s) with ~2 s per 23 MB batch that is ~22 batches,
# about 500 MB. Small images stay far below this; `--max-inflight-bytes` lowers it for small machines.
DEFAULT_INFLIGHT_BYTES = 768 * 1024 * 1024

@dataclass
class UploadOptions:
    """Everything ``cvbulk upload`` takes besides the connection (see ``cvbulk upload --help``)."""

    root: Path
    project: str
    create: bool = False
    labels: str = "folders"
    untagged: bool = False
    exclude: tuple[str, ...] = ()
    state: Path | None = None
    report: Path | None = None
    dry_run: bool = False
    tier: str | None = None  # for the tags-per-project check; None: learn it from the service
    max_concurrency: int = 32  # sender tasks; the client's Pacer adapts below this
    batch_bytes: int = DEFAULT_BATCH_BYTES
    # Bytes of batches the senders may hold at once (default DEFAULT_INFLIGHT_BYTES): bounds memory
    # when images are large; small images leave it far from the limit.
    max_inflight_bytes: int | None = None
    domain: str | None = None
    classification_type: str | None = None
    linger: float = DEFAULT_LINGER
    prepare_workers: int | None = None  # default: the number of cores
    limits: ImageLimits = TRAINING_LIMITS
    include_hidden: bool = False
    # Where the images come from (default: the folder ``root``); labels are still read under ``root``.
    source: ImageSource | None = None

    def __post_init__(self) -> None:
        self.root = Path(self.root)
        self.exclude = tuple(self.exclude or ())
        if self.state is not None:
            self.state = Path(self.state)
        if self.report is not None:
            self.report = Path(self.report)
        if self.max_concurrency < 1:
            raise ConfigError("{opt:max_concurrency} must be at least 1")
        if self.batch_bytes < 1024:
            raise ConfigError("{opt:batch_bytes} must be at least 1024")


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:60] or "project"


def default_state_path(
    root: Path, project: str, report: Path | None = None, *, project_id: str | None = None
) -> Path:
    """``.cvbulk/upload-<project>-<hash>.sqlite`` in the current directory, or next to ``report``
    when one is named. The hash is of ROOT and the project's id (its name while it has none), so
    the same upload finds its state again however the project is named on the command line."""
    digest = hashlib.sha256(f"{Path(root).resolve()}\0{project_id or project}".encode()).hexdigest()[:8]
    name = f"upload-{_slug(project)}-{digest}.sqlite"
    folder = report.parent if report is not None else Path.cwd() / STATE_DIR
    return folder / name


def default_report_path(state: Path) -> Path:
    """The report goes next to the state file: ``<state>.report.json``."""
    return state.with_name(state.stem + ".report.json")


def _source(options: UploadOptions) -> ImageSource:
    return options.source if options.source is not None else LocalFolder(options.root)


def _excluded(relpath: str, patterns: Sequence[str]) -> bool:
    """A pattern matches the relative path, any leading folder of it, or the file name."""
    if not patterns:
        return False
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] + [parts[-1]]
    return any(fnmatchcase(c, p.rstrip("/")) for p in patterns for c in candidates)


_SAFE = re.compile(r"[^A-Za-z0-9._-]+")
_EXT = {"JPEG": ".jpg", "PNG": ".png", "BMP": ".bmp", "GIF": ".gif"}


def _wire_name(relpath: str, fmt: str) -> str:
    """An ASCII file name for the service: the file's stem and the extension of what is sent."""
    stem = _SAFE.sub("_", os.path.splitext(relpath.rsplit("/", 1)[-1])[0]).strip("_")[:80] or "image"
    return stem + _EXT.get(fmt.upper(), "." + fmt.lower())


@dataclass(frozen=True, slots=True)
class _Context:
    """What the journal row of an image needs, carried through batch and send."""

    size: int
    mtime_ns: int
    sha256: str
    fixes: tuple[str, ...]
    prior_status: str | None
    attempts: int
    spooled: Path | None = None  # a fixed image's temporary file, removed once its outcome is recorded


@dataclass(frozen=True, slots=True)
class _Work:
    entry: ScanEntry
    labels: Labels | None
    prior: JournalEntry | None


@dataclass
class _Run(JournalCalls):
    """The state of one run shared by its tasks (counters only: per-file state lives in the journal)."""

    options: UploadOptions
    source: LabelSource
    journal: Journal | None
    tags: TagMap
    progress: ProgressSink | None
    client: TrainingClient
    sender: ImageSender | None
    spool: Path | None = None  # where fixed images wait for their request
    tally: Counter = field(default_factory=Counter)
    fixes: Counter = field(default_factory=Counter)
    per_tag: Counter = field(default_factory=Counter)
    batches: Counter = field(default_factory=Counter)
    listed_rejects: list[dict[str, str]] = field(default_factory=list)
    bytes_prepared: int = 0
    bytes_sent: int = 0
    journal_lock: anyio.Lock = field(default_factory=anyio.Lock)
    cpu: anyio.CapacityLimiter = field(default_factory=lambda: anyio.CapacityLimiter(os.cpu_count() or 1))

    def advance(self, statuses: Sequence[str], nbytes: int = 0) -> None:
        self.tally.update(statuses)
        if self.progress is None:
            return
        ok = sum(1 for s in statuses if s in (UPLOADED, DUPLICATE, "would-send"))
        failed = sum(1 for s in statuses if s in FAILURE_STATUSES)
        skipped = len(statuses) - ok - failed
        self.progress.advanced(ok=ok, failed=failed, skipped=skipped, nbytes=nbytes)


async def run_upload(
    client: TrainingClient, options: UploadOptions, *, progress: ProgressSink | None = None
) -> UploadResult:
    """Upload ``options.root`` into the project; returns the typed result (with the report).

    ``progress`` (any :class:`~cvbulk.pipeline.engine.ProgressSink`) hears how the run goes. Errors about
    the whole run (no such project, bad label file, wrong key) are raised; errors about one file are
    recorded as that file's outcome.
    """
    started = time.time()
    root = options.root
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    try:
        source = await anyio.to_thread.run_sync(open_label_source, options.labels, root)
    except ValueError as exc:  # LabelFileError
        raise ConfigError(str(exc).replace("{", "{{").replace("}", "}}")) from None
    detection = bool(source.has_regions)

    project, created = await _project(client, options, detection, progress)
    tag_names = _tag_names(source, options)
    if options.dry_run or project is None:
        existing = await client.get_tags(project.id) if project is not None else []
        known = {t.name: t.id for t in existing}
        # A dry run creates nothing: a missing tag stands for itself.
        tags = TagMap(None, "", {n: _Named(known.get(n, f"(new) {n}")) for n in tag_names})
        tags_created = [n for n in tag_names if n not in known]
    else:
        tag_limit = TAG_LIMITS.get(options.tier) if options.tier else None
        existing = await client.get_tags(project.id)
        tags = TagMap(
            client,
            project.id,
            await ensure_tags(
                client, project.id, tag_names, tag_limit=tag_limit, existing=existing, progress=progress,
                tier=options.tier,
            ),
        )
        before = {t.name for t in existing}
        tags_created = [n for n in tag_names if n not in before]

    state = options.state or default_state_path(
        root,
        project.name if project is not None else options.project,
        options.report,
        project_id=project.id if project is not None else None,
    )
    report_path = options.report or default_report_path(state)
    journal = None
    if project is not None and (not options.dry_run or state.exists()):
        fingerprint = {"root": _source(options).location, "project_id": project.id}
        journal = await open_journal(state, job="upload", fingerprint=fingerprint)

    run = _Run(
        options=options,
        source=source,
        journal=journal,
        tags=tags,
        progress=progress,
        client=client,
        sender=None if options.dry_run else ImageSender(client, project.id, started=started),  # type: ignore[union-attr,arg-type]
    )
    if options.prepare_workers:
        run.cpu = anyio.CapacityLimiter(options.prepare_workers)
    if progress is not None:
        progress.started(None)  # the total: counted up front if quick, else found by the lazy scan
        count_first(progress, _source(options), include_hidden=options.include_hidden)
        if not options.dry_run and _concurrency(client) is not None:
            # Read at each draw: the Pacer's adaptive limit moves with 429s and 5xx.
            progress.watch_concurrency(lambda: _concurrency(client))

    async def finish() -> tuple[bool, dict[str, Any]]:
        finished = time.time()
        failed_now = sum(n for s, n in run.tally.items() if s in FAILURE_STATUSES or s == "still-failed")
        ok = not failed_now
        failures: list[Any] = (
            list(run.listed_rejects)
            if journal is None or options.dry_run
            else await run.journal_call(lambda: list(journal.failures()))
        )
        return ok, _report(run, project, created, tags_created, state, started, finished, ok, failures)

    # A failing stage surfaces as itself (handle_errors wants one clear line); the journal is always closed.
    with tempfile.TemporaryDirectory(prefix="cvbulk-spool-") as spool:
        run.spool = Path(spool)
        ok, report = await run_job(run, journal, progress, partial(_pipeline, run), finish)
    if not options.dry_run:
        await anyio.to_thread.run_sync(write_report, report_path, report)
        report["report_file"] = str(report_path)
    return UploadResult(
        ok=ok,
        report=report,
        state_file=state if journal is not None else None,
        report_file=None if options.dry_run else report_path,
        dry_run=options.dry_run,
    )


@dataclass(frozen=True)
class _Named:
    id: str


async def _project(
    client: TrainingClient, options: UploadOptions, detection: bool, progress: ProgressSink | None = None
) -> tuple[Project | None, bool]:
    if options.dry_run:
        try:
            project = await resolve_project(client, options.project)
        except ProjectNotFound:
            if not options.create:
                raise ProjectNotFound(
                    f"no project with the id or name {options.project!r} (pass {{opt:create}} to create it)"
                ) from None
            return None, False  # would be created
    else:
        project, created = await find_or_create_project(
            client,
            options.project,
            create=options.create,
            domain=options.domain,
            classification_type=options.classification_type,
            detection=detection,
            progress=progress,
        )
        if created:
            return project, True
    if detection and not is_detection_domain(await project_domain(client, project)):
        raise ConfigError(
            f"the labels carry regions but project {project.name!r} is not an object-detection "
            "project (create one with {opt:create} and a new name)"
        )
    return project, False


def _tag_names(source: LabelSource, options: UploadOptions) -> list[str]:
    names = source.tag_names()
    if options.labels == "folders":
        # A tag folder excluded as a whole (e.g. --exclude Test) is no tag to create.
        names = [n for n in names if not _excluded(n, options.exclude)]
    return names


# -- the pipeline ---------------------------------------------------------------------------------


async def _pipeline(run: _Run) -> None:
    opts = run.options
    workers = max(1, opts.prepare_workers or os.cpu_count() or 1)
    work_send, work_recv = anyio.create_memory_object_stream[_Work](2 * _PLAN_CHUNK)
    record_send, record_recv = anyio.create_memory_object_stream[JournalEntry](4 * _PLAN_CHUNK)
    # Prepared images hold their bytes: keep this buffer small, the batcher holds the rest.
    item_send, item_recv = anyio.create_memory_object_stream[BatchItem](2 * workers)
    batch_send, batch_recv = anyio.create_memory_object_stream[Batch](1)
    batcher = Batcher(max_bytes=opts.batch_bytes)

    async with anyio.create_task_group() as tg:
        tg.start_soon(_recorder, run, record_recv)
        tg.start_soon(_scan_and_plan, run, work_send, record_send.clone())
        for _ in range(2 * workers):  # twice the cores: one reads while another computes
            tg.start_soon(_preparer, run, work_recv.clone(), item_send.clone(), record_send.clone())
        ticker = item_send.clone()
        work_recv.close()
        item_send.close()
        record_send.close()
        tg.start_soon(
            partial(
                batch_stream,
                item_recv,
                batch_send,
                batcher,
                linger=opts.linger,
                ticker_send=ticker,
                on_batch=lambda b: run.batches.update([b.kind]),
            )
        )
        if opts.dry_run:
            tg.start_soon(_dry_run_sink, run, batch_recv)
        else:
            budget = _ByteBudget(opts.max_inflight_bytes or DEFAULT_INFLIGHT_BYTES, opts.batch_bytes)
            for _ in range(opts.max_concurrency):
                tg.start_soon(_sender, run, batch_recv.clone(), budget)
            batch_recv.close()


async def _scan_and_plan(
    run: _Run, work_send: ObjectSendStream[_Work], record_send: ObjectSendStream[JournalEntry]
) -> None:
    opts = run.options
    async with work_send, record_send:
        chunk: list[ScanEntry | ScanProblem] = []
        async for found in _source(opts).entries(include_hidden=opts.include_hidden):
            if _excluded(found.relpath, opts.exclude):
                continue
            chunk.append(found)
            if len(chunk) >= _PLAN_CHUNK:
                await _plan(run, chunk, work_send, record_send)
                chunk = []
        if chunk:
            await _plan(run, chunk, work_send, record_send)
        scan_finished(run.progress)


def _lookup(run: _Run, chunk: list[ScanEntry | ScanProblem]) -> list[tuple[Any, Labels | LabelProblem | None, Any]]:
    """One worker-thread hop per chunk: the journal rows and the labels of its files."""
    journal = run.journal
    known = journal.get_many([f.relpath for f in chunk]) if journal is not None else {}
    source_labels = run.source.labels_for
    return [
        (f, source_labels(f.relpath) if not isinstance(f, ScanProblem) else None, known.get(f.relpath))
        for f in chunk
    ]


async def _plan(
    run: _Run,
    chunk: list[ScanEntry | ScanProblem],
    work_send: ObjectSendStream[_Work],
    record_send: ObjectSendStream[JournalEntry],
) -> None:
    planned = await anyio.to_thread.run_sync(_lookup, run, chunk)
    if run.progress is not None:
        run.progress.add_total(len(chunk))
    done: list[str] = []
    for found, labels, prior in planned:
        if isinstance(found, ScanProblem):
            if found.relpath == ".":  # ROOT itself cannot be read: nothing to upload at all
                raise ConfigError(f"cannot read {run.options.root}: {found.reason}")
            # Symlink loops, dangling links, unreadable folders: reported and skipped (no image lost
            # that could have been read); the scan's reason says which.
            if prior is None or prior.status != SKIPPED or prior.reason != found.reason:
                await record_send.send(
                    JournalEntry(found.relpath, None, None, None, SKIPPED, reason=found.reason)
                )
            else:
                done.append("unchanged")
            continue
        if isinstance(labels, LabelProblem):  # this image's labels are unusable: it alone is skipped
            await record_send.send(JournalEntry(found.relpath, found.size, found.mtime_ns, None, SKIPPED,
                                                reason=f"bad labels: {labels.reason}"))
            continue
        unlabelled = labels is None and not run.options.untagged
        if prior is not None and not needs_work(prior, found.size, found.mtime_ns):
            if prior.status == SKIPPED and prior.reason == NO_LABEL and not unlabelled:
                pass  # labelled since, or --untagged now: it has work after all
            else:
                done.append("still-failed" if prior.status in FAILURE_STATUSES else "unchanged")
                continue
        if unlabelled:
            await record_send.send(
                JournalEntry(found.relpath, found.size, found.mtime_ns, None, SKIPPED, reason=NO_LABEL)
            )
            continue
        await work_send.send(_Work(found, labels, prior))
    if done:
        run.advance(done)


async def _preparer(
    run: _Run,
    work_recv: ObjectReceiveStream[_Work],
    item_send: ObjectSendStream[BatchItem],
    record_send: ObjectSendStream[JournalEntry],
) -> None:
    opts = run.options
    async with work_recv, item_send, record_send:
        async for work in work_recv:
            entry = work.entry
            labels = work.labels or Labels(())
            try:
                result = await anyio.to_thread.run_sync(
                    partial(_source(opts).prepare, entry, opts.limits, labels.regions),
                    limiter=run.cpu,
                )
            except Exception as exc:  # a codec's own bug is this file's outcome, not the run's
                result = Rejected("corrupt", f"could not be read as an image ({type(exc).__name__}: {exc})")
            if isinstance(result, Rejected):
                await record_send.send(
                    JournalEntry(entry.relpath, entry.size, entry.mtime_ns, None, REJECTED, reason=result.reason)
                )
                continue
            item = await _batch_item(run, work, labels, await _hold(run, work.entry, result))
            del result  # the bytes go now: the item reads them again when its request is written
            await item_send.send(item)


async def _hold(run: _Run, entry: ScanEntry, prepared: PreparedImage) -> tuple[PreparedImage, ImageBody, Path | None]:
    """Where the image's bytes wait for their request: its own file when they are the file's (read again
    when the request is written), else a temporary file. Either way no bytes stay in memory."""
    if prepared.passed_through:
        return prepared, _source(run.options).body(entry, len(prepared.data)), None
    assert run.spool is not None
    spooled = await anyio.to_thread.run_sync(_spool, run.spool, prepared.data)
    return prepared, FileBody(spooled, len(prepared.data)), spooled


def _spool(folder: Path, data: bytes) -> Path:
    fd, name = tempfile.mkstemp(dir=folder, suffix=".img")
    with os.fdopen(fd, "wb") as f:
        f.write(data)
    return Path(name)


async def _batch_item(
    run: _Run, work: _Work, labels: Labels, held: tuple[PreparedImage, ImageBody, Path | None]
) -> BatchItem:
    prepared, body, spooled = held
    region_tags = {r.tag for r in prepared.regions}
    # The quickstart sends regions without tagIds: a region's tag is the image's tag.
    tag_ids = await run.tags.ids_for([t for t in labels.tags if t not in region_tags])
    region_ids = dict(zip(sorted(region_tags), await run.tags.ids_for(sorted(region_tags))))
    regions = tuple(
        TaggedRegion(region_ids[r.tag], r.left, r.top, r.width, r.height) for r in prepared.regions
    )
    run.fixes.update(prepared.fixes)
    run.bytes_prepared += len(prepared.data)
    prior = work.prior
    return BatchItem(
        key=work.entry.relpath,
        name=_wire_name(work.entry.relpath, prepared.format),
        body=body,
        tag_ids=tuple(sorted(set(tag_ids))),
        regions=regions,
        context=_Context(
            size=work.entry.size,
            mtime_ns=work.entry.mtime_ns,
            sha256=prepared.sha256,
            fixes=prepared.fixes,
            prior_status=prior.status if prior is not None else None,
            attempts=prior.attempts if prior is not None else 0,
            spooled=spooled,
        ),
    )


def _list_reject(run: _Run, path: str, reason: str) -> None:
    if len(run.listed_rejects) < _MAX_LISTED:
        run.listed_rejects.append({"path": path, "status": REJECTED, "reason": reason})


def _entry(item: BatchItem, status: str, image_id: str | None = None, reason: str | None = None) -> JournalEntry:
    ctx: _Context = item.context
    return JournalEntry(
        key=item.key,
        size=ctx.size,
        mtime_ns=ctx.mtime_ns,
        sha256=ctx.sha256,
        status=status,
        image_id=image_id,
        reason=reason,
        fixes=ctx.fixes,
        attempts=ctx.attempts,
    )


def _concurrency(client: Any) -> int | None:
    pacer = getattr(client, "pacer", None)
    if pacer is None:
        return None
    try:
        from ..client import ApiGroup

        return int(pacer.concurrency(ApiGroup.TRAINING))
    except Exception:  # a display nicety: never let it stop an upload
        return None


class _ByteBudget:
    """Bytes of batches held by the senders. Senders mostly wait (for a rate token, for the
    service): without a bound, N senders with big images would hold N x the batch budget."""

    def __init__(self, limit: int, first_guess: int) -> None:
        self.limit = limit
        self.used = 0
        self._changed = anyio.Event()
        self._recent: list[int] = [first_guess]

    @property
    def typical(self) -> int:
        """The largest of the last few batches: what a sender reserves before it takes one."""
        return max(self._recent)

    def observe(self, nbytes: int) -> None:
        self._recent = (self._recent + [max(nbytes, 1)])[-8:]

    async def reserve(self, n: int) -> None:
        # One holder always proceeds, so an oversized batch cannot wait for ever.
        while self.used and self.used + n > self.limit:
            await self._changed.wait()
        self.used += n

    def release(self, n: int) -> None:
        self.used -= n
        self._changed.set()
        self._changed = anyio.Event()


async def _sender(run: _Run, batch_recv: ObjectReceiveStream[Batch], budget: _ByteBudget) -> None:
    assert run.sender is not None and run.journal is not None
    journal = run.journal
    async with batch_recv:
        while True:
            # Room for a typical batch first, so that waiting happens before a batch is held.
            # Reserving the full byte budget per request instead would cap the requests in flight
            # at limit / batch_bytes (8), far below what a slow service needs to hold the rate.
            want = budget.typical
            await budget.reserve(want)
            try:
                batch = await batch_recv.receive()
            except anyio.EndOfStream:
                budget.release(want)
                return
            held = batch.nbytes
            budget.observe(held)
            if held > want:
                await budget.reserve(held - want)
            else:
                budget.release(want - held)
            try:
                await _send_one(run, journal, batch)
            finally:
                budget.release(held)


async def _send_one(run: _Run, journal: Journal, batch: Batch) -> None:
    assert run.sender is not None
    prior = {it.key: it.context.prior_status for it in batch.items}
    intent = [_entry(it, SENDING) for it in batch.items]
    try:
        outcomes = await send_recorded(
            run, journal, intent, partial(run.sender.send, batch, prior=prior), _outcome_entry
        )
    finally:
        spooled = [it.context.spooled for it in batch.items if it.context.spooled is not None]
        if spooled:
            await anyio.to_thread.run_sync(_unlink, spooled)
    sent = sum(o.item.nbytes for o in outcomes if o.status in (UPLOADED, DUPLICATE))
    run.bytes_sent += sent
    run.advance([o.status for o in outcomes], nbytes=sent)


def _unlink(paths: list[Path]) -> None:
    for p in paths:
        p.unlink(missing_ok=True)


def _outcome_entry(o: SendOutcome) -> JournalEntry:
    return _entry(o.item, o.status, o.image_id, o.reason)


async def _dry_run_sink(run: _Run, batch_recv: ObjectReceiveStream[Batch]) -> None:
    names = {tid: name for name, tid in run.tags._ids.items()}
    async with batch_recv:
        async for batch in batch_recv:
            for item in batch.items:
                tags = set(item.tag_ids) | {r.tag_id for r in item.regions}
                run.per_tag.update(names.get(t, t) for t in tags) if tags else run.per_tag.update(["(untagged)"])
                if item.context.spooled is not None:
                    await anyio.to_thread.run_sync(_unlink, [item.context.spooled])
            run.bytes_sent += batch.nbytes
            run.advance(["would-send"] * len(batch), nbytes=batch.nbytes)


async def _recorder(run: _Run, record_recv: ObjectReceiveStream[JournalEntry]) -> None:
    """Outcomes that need no request, written in chunks (one transaction each)."""
    async with record_recv:
        while True:
            try:
                first = await record_recv.receive()
            except anyio.EndOfStream:
                return
            chunk = take_ready(first, record_recv, 256)
            if run.journal is not None and not run.options.dry_run:
                await run.journal_call(run.journal.record, chunk)
            else:
                for e in chunk:
                    if e.status in FAILURE_STATUSES:
                        _list_reject(run, e.key, e.reason or e.status)
            run.advance([e.status for e in chunk])


# -- the report -----------------------------------------------------------------------------------


def _report(
    run: _Run,
    project: Project | None,
    created: bool,
    tags_created: list[str],
    state: Path,
    started: float,
    finished: float,
    ok: bool,
    failures: list[Any],
) -> dict[str, Any]:
    opts = run.options
    counts = {s: n for s, n in run.tally.items() if s not in ("unchanged", "still-failed", "would-send")}
    journal = run.journal
    stats = getattr(run.client, "stats", None)
    snapshot = stats.snapshot() if stats is not None and not opts.dry_run else None
    extra: dict[str, Any] = {
        "root": str(opts.root),
        "project": {
            "id": project.id if project is not None else None,
            "name": project.name if project is not None else opts.project,
            "created": created,
            "would_create": project is None,
        },
        "labels": opts.labels,
        "dry_run": opts.dry_run,
        "state_file": str(state) if journal is not None else None,
        "unchanged": run.tally.get("unchanged", 0) + run.tally.get("still-failed", 0),
        "still_failed": run.tally.get("still-failed", 0),
        "tags_created": tags_created,
        # Lists, not dicts keyed by name: the report drops any field whose name holds "key".
        "fixes": [{"fix": f, "images": n} for f, n in run.fixes.most_common()],
        "batches": dict(run.batches),
        "splits": run.sender.splits if run.sender is not None else 0,
        "bytes_prepared": run.bytes_prepared,
        "concurrency": _concurrency(run.client),
        "exit_code": 0 if ok else 1,
    }
    if opts.dry_run:
        extra["would_send"] = {
            "images": run.tally.get("would-send", 0),
            "bytes": run.bytes_sent,
            "per_tag": [{"tag": t, "images": n} for t, n in sorted(run.per_tag.items())],
            "tags_to_create": tags_created,
        }
    return build_report(
        job="upload",
        started=started,
        finished=finished,
        counts=counts,
        failures=failures,
        client_stats=snapshot,
        extra=extra,
        nbytes=run.bytes_sent,
    )
