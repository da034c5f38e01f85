"""``cvbulk upload``: a labelled image tree into a Custom Vision project, resumable, at the rate limit.

scan -> plan -> prepare -> batch -> send -> record, joined by bounded memory object streams:

- *scan* walks the tree lazily in a worker thread (``scan.aiter_scan``); *plan* (``_upload_plan``) looks
  each chunk of files up in the journal and the label source in one worker-thread hop, and drops what is done.
- *prepare* (``_upload_prepare``) checks / fixes images off the event loop, bounded to the core count. Their bytes are not kept:
  an image that passes through is read again from its file when its request is written (a ``FileBody``);
  a fixed one is spooled to a temporary file first.
- *batch* groups them under 64 images / 20 tags / a byte budget (``batch.py``).
- *send* (``_upload_send``): N senders share the client, whose Pacer holds the tier's rate and adapts the concurrency.
  Each sender marks its batch ``sending`` in the journal before the request and records every
  image's outcome in one transaction after it, before taking the next batch: a run killed at any
  moment resumes without losing an image or creating one twice (the prepared bytes are
  deterministic, so a re-sent image comes back ``OKDuplicate``; it counts as ours only when the journal
  left THIS file ``sending`` and no other file owns the image: ``send.ImageSender``).
- *record*: per-file outcomes that need no request (skipped, rejected) are written in chunks.

Every candidate ends in one recorded outcome with its reason: what the scan did not take, what ``--exclude``
left out, what the labels say no to (``labels.decide``: no label / untagged skipped, invalid rejected), the
label file's rows that name no file; the report lists them (``_upload_report``).

Nothing per file is kept in memory beyond the bounded streams: the journal is the memory.
"""

from __future__ import annotations

import hashlib
import itertools
import os
import re
import tempfile
import time
from collections.abc import Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

from ._upload_plan import _PLAN_CHUNK, _scan_and_plan
from ._upload_prepare import _preparer
from ._upload_report import _concurrency, upload_report
from ._upload_send import _ByteBudget, _dry_run_sink, _recorder, _sender
from ._upload_state import _Run, _Work
from .batch import DEFAULT_BATCH_BYTES, DEFAULT_LINGER, Batch, Batcher, BatchItem, batch_stream
from .engine import (
    STATE_DIR,
    ProgressSink,
    check_outputs,
    count_first,
    open_journal,
    retry_notices,
    run_job,
)
from .errors import ConfigError, FatalRunError, ProjectNotFound
from .journal import (
    FAILURE_STATUSES,
    SKIPPED,
    Journal,
    JournalEntry,
)
from .labels import LabelSource, open_label_source, tag_types
from .prepare import TRAINING_LIMITS, ImageLimits
from .project import (
    TAG_LIMITS,
    TagLimitError,
    TagMap,
    ensure_tags,
    find_or_create_project,
    is_detection_domain,
    new_tag_names,
    project_domain,
    resolve_project,
)
from .report import write_report
from .results import UploadResult
from .scan import excluded_by
from .send import ImageSender
from .sources import ImageSource, LocalFolder, source_stop, state_key

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
    root: Path | str, project: str, report: Path | None = None, *, project_id: str | None = None
) -> Path:
    """``.cvbulk/upload-<project>-<hash>.sqlite`` in the current directory, or next to ``report``
    when one is named. The hash is of ROOT and the project's id (its name while it has none), so
    the same upload finds its state again however the project is named on the command line."""
    where = root if isinstance(root, str) and "://" in root else Path(root).resolve()  # a container's state_key
    digest = hashlib.sha256(f"{where}\0{project_id or project}".encode()).hexdigest()[:8]
    name = f"upload-{_slug(project)}-{digest}.sqlite"
    folder = report.parent if report is not None else Path.cwd() / STATE_DIR
    return folder / name


def default_report_path(state: Path) -> Path:
    """The report goes next to the state file: ``<state>.report.json``."""
    return state.with_name(state.stem + ".report.json")


def _make_sender(options: UploadOptions, client: Any, project_id: str, started: float, owners: Any) -> ImageSender:
    make = getattr(_source(options), "make_sender", None)  # a container's sends by URL, with a fallback
    if make is None:
        return ImageSender(client, project_id, started=started, owners=owners)
    return make(client, project_id, started=started, owners=owners)


def _source(options: UploadOptions) -> ImageSource:
    return options.source if options.source is not None else LocalFolder(options.root)


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


def _label_paths_mismatch(run: _Run, options: UploadOptions) -> str | None:
    """Why no file of ROOT got its labels, when the label file names files and not one of them was found: its
    paths are not relative to ROOT (full blob names under a prefix, another folder's paths). None otherwise."""
    listed = getattr(run.source, "listed", None)
    if listed is None or run.matched or not run.listed:
        return None
    paths = list(itertools.islice(listed(), 2))
    if not paths:
        return None
    storage = getattr(options.source, "storage", None)
    prefix = str(getattr(getattr(storage, "location", None), "prefix", "") or "")
    first = paths[0]
    said = f"no path of the label file names a file under ROOT (its first: {first!r}): its paths are relative to ROOT"
    if prefix and first.startswith(prefix):
        return (
            f"{said}, whose prefix is {prefix!r}: write {first[len(prefix):]!r}, not {first!r} (drop the prefix "
            "from the label file's paths, or give the container without it as ROOT)"
        )
    return said


async def _run_upload(client: TrainingClient, options: UploadOptions, progress: ProgressSink | None) -> UploadResult:
    started = time.time()
    root = options.root
    if options.source is None and not root.is_dir():
        raise ConfigError(f"{root} is not a folder")
    open_labels = getattr(_source(options), "open_labels", None) or open_label_source  # a container: virtual folders
    # Before any request: what this run will write can be written (and a state file is one).
    if options.dry_run:
        check_outputs(state=options.state if options.state is not None and options.state.exists() else None)
    else:
        folder = options.report.parent if options.report is not None else Path.cwd() / STATE_DIR
        check_outputs(report=options.report, state=options.state or folder / f"upload-{_slug(options.project)}.sqlite")
    try:
        source = await anyio.to_thread.run_sync(open_labels, options.labels, root)
    except ValueError as exc:  # LabelFileError
        raise ConfigError(str(exc).replace("{", "{{").replace("}", "}}")) from None
    detection = bool(source.has_regions)

    project, created = await _project(client, options, detection, progress)
    tag_names = _tag_names(source, options)
    if options.dry_run or project is None:
        existing = await client.get_tags(project.id) if project is not None else []
        known = {t.name: t.id for t in existing}
        # A dry run creates nothing: a missing tag stands for itself.
        # the project's tags too: a name first met mid-run (a container's virtual folder) may be one of them
        tags = TagMap(None, "", {**{n: _Named(i) for n, i in known.items()},
                                 **{n: _Named(known.get(n, f"(new) {n}")) for n in tag_names}})
        tags_created = new_tag_names(tag_names, known)
        before_ids = set(known.values())
    else:
        tag_limit = TAG_LIMITS.get(options.tier) if options.tier else None
        existing = await client.get_tags(project.id)
        ensured = await ensure_tags(
            client, project.id, tag_names, tag_limit=tag_limit, existing=existing, progress=progress, tier=options.tier,
            types=tag_types(source),
        )
        # the project's other tags too: a name first met mid-run (a container's virtual folder) finds its tag here
        tags = _RunTags(client, project.id, {**{t.name: t for t in existing}, **ensured}, limit=tag_limit)
        before = {t.name for t in existing}
        tags_created = new_tag_names(tag_names, before)
        before_ids = {t.id for t in existing}

    state = options.state or default_state_path(
        root if options.source is None else state_key(_source(options)),
        project.name if project is not None else options.project,
        options.report,
        project_id=project.id if project is not None else None,
    )
    report_path = options.report or default_report_path(state)
    journal = None
    if project is not None and (not options.dry_run or state.exists()):
        fingerprint = {"root": state_key(_source(options)), "project_id": project.id}
        journal = await open_journal(state, job="upload", fingerprint=fingerprint)

    run = _Run(
        options=options,
        source=source,
        journal=journal,
        tags=tags,
        progress=progress,
        client=client,
        images=_source(options),
        sender=None
        if options.dry_run
        else _make_sender(options, client, project.id, started, _owners_of(journal)),  # type: ignore[union-attr]
    )
    if options.prepare_workers:
        run.cpu = anyio.CapacityLimiter(options.prepare_workers)
    if progress is not None:
        progress.started(None)  # the total: counted up front if quick, else found by the lazy scan
        count_first(progress, _source(options), include_hidden=options.include_hidden)
        if not options.dry_run and _concurrency(client) is not None:
            # Read at each draw: the Pacer's adaptive limit moves with 429s and 5xx.
            progress.watch_concurrency(lambda: _concurrency(client))

    # Storage that stops answering mid-run, or a tag past the tier's limit first met mid-run, ends the run with its
    # report (every outcome so far, why it stopped).
    stop = source_stop(_source(options), also=_tag_limit_stop)

    async def finish() -> UploadResult:
        finished = time.time()
        failed_now = sum(n for s, n in run.tally.items() if s in FAILURE_STATUSES or s == "still-failed")
        mismatch = _label_paths_mismatch(run, options)
        ok = not failed_now and stop.error is None and mismatch is None
        failures: list[Any] = (
            list(run.listed_rejects)
            if journal is None or options.dry_run
            else await run.journal_call(lambda: list(journal.failures()))
        )
        listed = await run.journal_call(_listed, journal) if journal is not None and not options.dry_run else {}
        # listed but given no outcome (left in the streams, or ``sending`` when the run stopped)
        stopped = stop.report(max(0, run.listed - sum(run.tally.values())))
        report = upload_report(
            run, project, created, _created_tags(tags_created, tags, before_ids), state, started, finished, ok,
            failures, listed, stopped=stopped,
        )
        if mismatch is not None:
            report.setdefault("extra", {})["label_paths"] = mismatch  # the exit status's reason (failure_summary)
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

    # A failing stage surfaces as itself (handle_errors wants one clear line); the journal is always closed.
    with tempfile.TemporaryDirectory(prefix="cvbulk-spool-") as spool:
        run.spool = Path(spool)
        return await run_job(run, journal, progress, partial(_pipeline, run), finish, stop=stop)


@dataclass(frozen=True)
class _Named:
    id: str


class TagLimitReached(ConfigError):
    """A tag first met mid-run (a container's virtual folder) would pass the tier's tags-per-project limit."""


class _RunTags(TagMap):
    """The run's tags. One first met mid-run is made within the tier's limit (``limit``; None: the service's own
    refusal is the check): past it the run stops with its report, the images sent so far staying in the project."""

    def __init__(self, client: Any, project_id: str, tags: Any, *, limit: int | None) -> None:
        super().__init__(client, project_id, tags)
        self._limit = limit

    async def _create(self, name: str) -> str:
        held = len(self.names)  # distinct tags known: the project's and this run's
        if self.get(name) is None and self._limit is not None and held >= self._limit:
            raise TagLimitReached(_past_limit(name, f"{held + 1} tags but its tier allows {self._limit}"))
        try:
            return await super()._create(name)
        except TagLimitError as exc:  # the service's own refusal, worded for a run that had not begun
            raise TagLimitReached(_past_limit(name, exc.would)) from None


def _past_limit(name: str, would: str) -> str:
    return (
        f"the tag {name!r} met mid-run would give the project {would}: the images sent so far stay; "
        "--exclude folders, or use a project or tier with room for more tags"
    ).replace("{", "{{").replace("}", "}}")


def _tag_limit_stop(exc: BaseException) -> FatalRunError | None:
    return FatalRunError(exc.template) if isinstance(exc, TagLimitReached) else None


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


def _created_tags(announced: list[str], tags: TagMap, before_ids: set[str]) -> list[str]:
    """The tags this run created (or, a dry run, would create): those its labels announced up front, and those made
    when a name first came up (a container's virtual folders are tags as the one listing finds them)."""
    found = {name for tid, name in tags.names.items() if tid not in before_ids}
    return announced + new_tag_names(sorted(found), announced)



def _tag_names(source: LabelSource, options: UploadOptions) -> list[str]:
    names = source.tag_names()
    if options.labels == "folders":
        # A tag folder excluded as a whole (e.g. --exclude Test) is no tag to create.
        names = [n for n in names if excluded_by(n, options.exclude) is None]
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
        # twice the cores: one reads while another computes; more for a source whose checks wait on the network
        for _ in range(getattr(_source(opts), "prepare_tasks", None) or 2 * workers):
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


