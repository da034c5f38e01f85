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

Every candidate ends in one recorded outcome with its reason: what the scan did not take, what ``--exclude``
left out, what the labels say no to (``labels.decide``: no label / untagged skipped, invalid rejected), the
label file's rows that name no file; the report lists them (``_upload_report``).

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
from dataclasses import dataclass, field, replace
from fnmatch import fnmatchcase
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ..client._body import FileBody, ImageBody
from ..client._errors import AuthenticationError, CustomVisionError, NotFoundError
from ._upload_report import _concurrency, upload_report
from .batch import DEFAULT_BATCH_BYTES, DEFAULT_LINGER, Batch, Batcher, BatchItem, TaggedRegion, batch_stream
from .engine import (
    STATE_DIR,
    JournalCalls,
    ProgressSink,
    check_outputs,
    open_journal,
    retry_notices,
    run_job,
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
from .labels import NO_LABEL, UNTAGGED, LabelProblem, Labels, LabelSource, decide, open_label_source
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
from .report import write_report
from .results import UploadResult
from .scan import ScanEntry, ScanProblem
from .send import ImageSender, Reclassified, SendOutcome
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

MISSING = "listed in the label file, but there is no such file under ROOT"
NOT_SCANNED = "listed in the label file, but the scan did not take it (see the line of its folder)"
# Reasons decided by the plan (not by the image): a rerun redoes the file when the plan says otherwise now
# (labels fixed, --untagged, a pattern dropped), even though the file itself did not change.
_PLAN_REASONS = ("excluded by --exclude", "bad labels:", NO_LABEL, UNTAGGED)
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
    # A file changed since it was uploaded is sent again as a new image; with this, the old image is
    # deleted once the new one is created (else it stays, and the report says so).
    replace_changed: bool = False
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
    return _excluded_by(relpath, patterns) is not None


def _excluded_by(relpath: str, patterns: Sequence[str]) -> str | None:
    """The first pattern that excludes ``relpath``, or None."""
    if not patterns:
        return None
    parts = relpath.split("/")
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))] + [parts[-1]]
    for p in patterns:
        if any(fnmatchcase(c, p.rstrip("/")) for c in candidates):
            return p
    return None


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
    note: str | None = None  # the scan's remark on the file (a name ending in a space)
    replaces: str | None = None  # the image an earlier version of this file became (the file changed since)


@dataclass(frozen=True, slots=True)
class _Work:
    entry: ScanEntry
    labels: Labels
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
    matched: set[str] = field(default_factory=set)  # rows of the label file some scanned file matched
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
    recorded as that file's outcome. The client's retry waits (a 429, a 5xx) reach ``progress.phase``.
    """
    with retry_notices(progress, client):
        return await _run_upload(client, options, progress)


async def _run_upload(client: TrainingClient, options: UploadOptions, progress: ProgressSink | None) -> UploadResult:
    started = time.time()
    root = options.root
    if not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    # Before any request: what this run will write can be written (and a state file is one).
    if options.dry_run:
        check_outputs(state=options.state if options.state is not None and options.state.exists() else None)
    else:
        folder = options.report.parent if options.report is not None else Path.cwd() / STATE_DIR
        check_outputs(report=options.report, state=options.state or folder / f"upload-{_slug(options.project)}.sqlite")
    try:
        source = await anyio.to_thread.run_sync(open_label_source, options.labels, root)
    except ValueError as exc:  # LabelFileError
        raise ConfigError(str(exc).replace("{", "{{").replace("}", "}}")) from None
    detection = bool(source.has_regions)

    project, created = await _project(client, options, detection)
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
            await ensure_tags(client, project.id, tag_names, tag_limit=tag_limit, existing=existing),
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
        sender=None
        if options.dry_run
        else ImageSender(client, project.id, started=started, owners=_owners_of(journal)),  # type: ignore[union-attr]
    )
    if options.prepare_workers:
        run.cpu = anyio.CapacityLimiter(options.prepare_workers)
    if progress is not None:
        progress.started(None)  # the total grows as the lazy scan finds files
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
        listed = await run.journal_call(_listed, journal) if journal is not None and not options.dry_run else {}
        return ok, upload_report(
            run, project, created, tags_created, state, started, finished, ok, failures, listed
        )

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


def _owners_of(journal: Journal | None) -> Any:
    if journal is None:
        return None

    async def owners(image_ids: Sequence[str]) -> dict[str, str]:
        return await anyio.to_thread.run_sync(journal.owners, image_ids)

    return owners


_LISTED = 10_000  # rows of each kind listed by the report (the counts stay exact)


def _listed(journal: Journal) -> dict[str, Any]:
    """What the report lists besides failures, from the state file: every skipped candidate with its
    reason, every fixed image with its fixes, every note (a file taken with a remark, a changed file)."""
    skipped: list[dict[str, Any]] = []
    fixed: list[dict[str, Any]] = []
    notes: list[dict[str, Any]] = []
    for e in journal.entries(SKIPPED):
        if len(skipped) >= _LISTED:
            break
        skipped.append({"path": e.key, "reason": e.reason or SKIPPED})
    for e in journal.annotated():
        if e.fixes and len(fixed) < _LISTED:
            fixed.append({"path": e.key, "status": str(e.status), "fixes": list(e.fixes)})
        note = (e.extra or {}).get("note")
        if note and len(notes) < _LISTED:
            notes.append({"path": e.key, "status": str(e.status), "note": note})
    return {"skipped": skipped, "fixed": fixed, "notes": notes, "state_counts": journal.counts()}

async def _project(
    client: TrainingClient, options: UploadOptions, detection: bool
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
            chunk.append(found)
            if len(chunk) >= _PLAN_CHUNK:
                await _plan(run, chunk, work_send, record_send)
                chunk = []
        if chunk:
            await _plan(run, chunk, work_send, record_send)
        await _plan_unmatched(run, record_send)


def _lookup(run: _Run, chunk: list[ScanEntry | ScanProblem]) -> list[tuple[Any, Labels | LabelProblem | None, Any]]:
    """One worker-thread hop per chunk: the journal rows and the labels of its files."""
    journal = run.journal
    known = journal.get_many([f.relpath for f in chunk]) if journal is not None else {}
    source_labels = run.source.labels_for
    matched_key = getattr(run.source, "matched_key", None)
    out = []
    for f in chunk:
        if matched_key is not None:
            key = matched_key(f.relpath)
            if key is not None:
                run.matched.add(key)  # this row of the label file names a file the scan found
        labels = source_labels(f.relpath) if not isinstance(f, ScanProblem) else None
        out.append((f, labels, known.get(f.relpath)))
    return out


async def _plan_unmatched(run: _Run, record_send: ObjectSendStream[JournalEntry]) -> None:
    """The label file's rows that name no file the scan found: each is an outcome too (skipped, why)."""
    listed = getattr(run.source, "listed", None)
    if listed is None:
        return
    root = run.options.root

    def unmatched() -> list[tuple[str, str, JournalEntry | None]]:
        rows = [key for key in listed() if key not in run.matched]
        known = run.journal.get_many(rows) if run.journal is not None else {}
        out = []
        for key in rows:
            there = run.options.source is None and os.path.lexists(root / key)
            out.append((key, NOT_SCANNED if there else MISSING, known.get(key)))
        return out

    missing = await anyio.to_thread.run_sync(unmatched)
    if run.progress is not None and missing:
        run.progress.add_total(len(missing))
    done = 0
    for key, reason, prior in missing:
        if prior is not None and prior.status == SKIPPED and prior.reason == reason:
            done += 1
        elif prior is None or prior.size is None:  # never let a row of the label file hide a file's outcome
            await record_send.send(JournalEntry(key, None, None, None, SKIPPED, reason=reason))
        else:
            done += 1
    if done:
        run.advance(["unchanged"] * done)


def _decision(run: _Run, found: ScanEntry, labels: Labels | LabelProblem | None) -> tuple[str, str] | Labels:
    """What the plan decides for a scanned file before reading it: (status, reason) or the labels to send."""
    pattern = _excluded_by(found.relpath, run.options.exclude)
    if pattern is not None:
        return SKIPPED, f"excluded by --exclude {pattern}"
    decided = decide(labels, untagged=run.options.untagged)
    if isinstance(decided, LabelProblem):
        if decided.kind in ("no-label", "untagged"):
            return SKIPPED, decided.reason
        return REJECTED, f"bad labels: {decided.reason}"  # never sent: untagged would lose the labels meant
    return decided


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
            # Hidden, special and unsupported files, symlink loops, dangling links, unreadable folders:
            # reported and skipped (no image lost that could have been read); the scan's reason says which.
            if prior is None or prior.status != SKIPPED or prior.reason != found.reason:
                await record_send.send(JournalEntry(found.relpath, None, None, None, SKIPPED, reason=found.reason))
            else:
                done.append("unchanged")
            continue
        decision = _decision(run, found, labels)
        if not isinstance(decision, Labels):
            status, reason = decision
            same = prior is not None and prior.status == status and prior.reason == reason
            if same and not needs_work(prior, found.size, found.mtime_ns):
                done.append("still-failed" if status in FAILURE_STATUSES else "unchanged")
            else:
                note = getattr(found, "note", None)
                await record_send.send(
                    JournalEntry(found.relpath, found.size, found.mtime_ns, None, status, reason=reason,
                                 extra={"note": note} if note else None)
                )
            continue
        # A file skipped or rejected by the plan before (labels, --untagged, --exclude) has work now.
        planned_before = prior is not None and (prior.reason or "").startswith(_PLAN_REASONS)
        if prior is not None and not needs_work(prior, found.size, found.mtime_ns) and not planned_before:
            done.append("still-failed" if prior.status in FAILURE_STATUSES else "unchanged")
            continue
        await work_send.send(_Work(found, decision, prior))
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
            labels = work.labels
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
    replaces = None
    if prior is not None:
        # The image an earlier version of this file became (kept through an interrupted re-send).
        replaces = prior.image_id if prior.status == UPLOADED else (prior.extra or {}).get("replaces")
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
            note=getattr(work.entry, "note", None),
            replaces=replaces,
        ),
    )


def _list_reject(run: _Run, path: str, reason: str) -> None:
    if len(run.listed_rejects) < _MAX_LISTED:
        run.listed_rejects.append({"path": path, "status": REJECTED, "reason": reason})


def _entry(
    item: BatchItem, status: str, image_id: str | None = None, reason: str | None = None, *, deleted: bool = False
) -> JournalEntry:
    ctx: _Context = item.context
    extra: dict[str, Any] = {}
    notes = [ctx.note] if ctx.note else []
    if ctx.replaces and status == SENDING:
        extra["replaces"] = ctx.replaces
    elif ctx.replaces and image_id and image_id != ctx.replaces and status in (UPLOADED, DUPLICATE):
        if deleted:
            notes.append(f"changed since uploaded: sent again; the old image (id {ctx.replaces}) was deleted")
        else:
            new = "sent again as a new image" if status == UPLOADED else "its new content is already in the project"
            notes.append(f"changed since uploaded: {new}; the old image stays in the project (id {ctx.replaces})")
            extra["replaces"] = ctx.replaces
    if notes:
        extra["note"] = "; ".join(notes)
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
        extra=extra or None,
    )


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
    moved = run.sender.take_reclassified()
    if moved:
        await run.journal_call(_demote, journal, moved)
        run.tally.subtract({UPLOADED: len(moved)})
        run.tally.update({DUPLICATE: len(moved)})
    if run.options.replace_changed:
        await _replace_changed(run, journal, outcomes)
    sent = sum(o.item.nbytes for o in outcomes if o.status in (UPLOADED, DUPLICATE))
    run.bytes_sent += sent
    run.advance([o.status for o in outcomes], nbytes=sent)


def _demote(journal: Journal, moved: list[Reclassified]) -> None:
    """Uploaded outcomes a later answer showed to be another file's image: recorded as duplicates."""
    rows = journal.get_many([m.key for m in moved])
    fixed = [
        replace(rows[m.key], status=DUPLICATE, reason=m.reason)
        for m in moved
        if m.key in rows and rows[m.key].status == UPLOADED and rows[m.key].image_id == m.image_id
    ]
    journal.record(fixed)


async def _replace_changed(run: _Run, journal: Journal, outcomes: list[SendOutcome]) -> None:
    """--replace-changed: a changed file's new image is in; its old image goes (then the note says so)."""
    done = [
        o
        for o in outcomes
        if o.status == UPLOADED and o.image_id and o.item.context.replaces not in (None, o.image_id)
    ]
    if not done:
        return
    old = sorted({o.item.context.replaces for o in done})
    try:
        await run.client.delete_images(run.sender.project_id if run.sender else "", old)
    except (AuthenticationError, NotFoundError):
        raise
    except CustomVisionError:
        return  # the old images stay; the notes already recorded say so
    await run.journal_call(journal.record, [_entry(o.item, o.status, o.image_id, o.reason, deleted=True) for o in done])


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
