"""``cvbulk export``: a project's images, labels and model history out to a folder or a blob container.

list -> plan -> download -> write -> record, joined by bounded memory object streams:

- *list* pages through every image of the project (``take`` 256, oldest first so that images added
  meanwhile land at the end and paging stays stable);
- *plan* looks each page up in the journal (keyed by the service's image id) and drops images already
  exported whose file is still in the destination; one whose labels alone changed is relabelled in the
  journal without downloading it again;
- N *workers* download the original images (``client.download``; an image link that expired, 403, is
  refreshed through GetImagesByIds and tried again), check the bytes (a readable image header of the
  size the service reports), write each one whole (a local file through a temporary name, a blob in one
  call) and record it, with its labels and metadata, in the journal: a run killed at any moment resumes
  where it stopped without downloading a finished image again;
- at the end the format's label files (``cvbulk.pipeline.formats``) and ``model.json`` are written from the
  journal, and the counts per tag, of untagged images and in all are checked against the service's.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import re
import shlex
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ..storage import (
    AccessDeniedError,
    ContainerNotFoundError,
    CredentialError,
    ImageSink,
    LocationError,
    MissingExtraError,
    StorageError,
    StorageUnreachableError,
    open_sink,
    parse_location,
    resolve_settings,
)
from ..storage import Location as StorageLocation
from ._export_counts import check_counts
from ._export_layout import check_image, content_type, sniff_extension
from ._image_links import MAX_LINK_REFRESHES, ImageLinks, LinkProblem, download_image
from ._reasons import one_line
from .engine import (
    PAGE,
    STATE_DIR,
    JournalCalls,
    ProgressSink,
    Stop,
    check_outputs,
    open_journal,
    retry_notices,
    run_job,
    send_pages,
    start_progress,
    take_ready,
)
from .errors import ConfigError, FatalRunError
from .formats import (
    FORMATS,
    ExportedImage,
    FolderLayout,
    FormatOptions,
    MemorySink,
    ProjectKind,
    RegionLabel,
    check_supported,
    image_relpath,
    kind_of_project,
    write_labels,
    write_model_json,
)
from .journal import ERROR, EXPORTED, FAILED, SKIPPED, Journal, JournalEntry
from .project import resolve_project
from .report import build_report, write_report
from .results import ExportResult
from .scan import IMAGE_EXTENSIONS
from .sources import storage_stop, yolo_in_container

if TYPE_CHECKING:
    from ..client import Image, Project, TrainingClient

__all__ = ["ExportOptions", "ExportResult", "run_export", "FORMATS", "STATE_DIR", "MAX_LINK_REFRESHES"]

PERFORMANCE_DEADLINE = 120.0  # s for one iteration's performance (model.json): history, not the data
_VERIFY_ATTEMPTS = 2  # a download that is not the image the service describes is fetched once more
Region = tuple[str, float, float, float, float]


@dataclass
class ExportOptions:
    """Everything ``cvbulk export`` takes besides the connection. ``out_dir`` is a folder or a container
    location (``az://container/prefix``, ``https://account.blob.core.windows.net/container/prefix``)."""

    project: str
    out_dir: str | Path
    format: str = "folders"
    state: Path | None = None
    report: Path | None = None
    max_concurrency: int = 16  # downloads in flight (links on a storage host: not paced as training calls)
    image_url_prefix: str | None = None
    validation_split: float = 0.0
    include_untagged: bool = False
    storage_environ: Mapping[str, str] | None = None  # credentials of a container (default: os.environ)
    location: StorageLocation = field(init=False, repr=False)

    def __post_init__(self) -> None:
        if self.format not in FORMATS:
            raise ConfigError(f"{{opt:format}} must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.max_concurrency < 1:
            raise ConfigError("{opt:max_concurrency} must be at least 1")
        if not 0.0 <= self.validation_split < 1.0:
            raise ConfigError(f"{{opt:validation_split}} must be at least 0 and below 1, not {self.validation_split}")
        try:
            self.location = parse_location(str(self.out_dir))
        except LocationError as exc:
            raise ConfigError(str(exc)) from None
        if self.state is None:
            self.state = default_state_file(self.location, self.storage_environ)
        self.state = Path(self.state)
        if self.report is None:
            self.report = self.state.with_name(self.state.stem + ".report.json")
        self.report = Path(self.report)

    @property
    def is_blob(self) -> bool:
        return self.location.is_blob


def default_state_file(location: StorageLocation, environ: Mapping[str, str] | None = None) -> Path:
    """OUT/.cvbulk/export.sqlite for a folder; for a container, a local file under ./.cvbulk/ (never in the
    container) keyed by the place (account, container, prefix: ``_place``), however OUT was typed."""
    if not location.is_blob:
        assert location.path is not None
        return location.path / STATE_DIR / "export.sqlite"
    digest = hashlib.sha256(_place(location, environ).encode("utf-8")).hexdigest()[:16]
    return Path(STATE_DIR) / f"export-{location.container}-{digest}.sqlite"


def _place(location: StorageLocation, environ: Mapping[str, str] | None = None) -> str:
    """One name for a destination (``Location.key``: no secret), the same for ``az://c/p``, its https and
    path-style http spellings, with or without a SAS token or a trailing slash. An ``az://`` location takes its
    account from the credentials (read from the environment, no request); without any, as typed (the run
    then stops on the missing credentials anyway)."""
    if location.is_blob and not location.account_name:
        try:
            account = resolve_settings(location, environ).account_name
        except (CredentialError, LocationError, MissingExtraError):
            return str(location)
        location = dataclasses.replace(location, account_name=account)
    return location.key


@dataclass(frozen=True, slots=True)
class _Work:
    image: Image
    prior: JournalEntry | None


@dataclass(frozen=True, slots=True)
class _Move:
    """An image exported before into a folder whose place changed (its first tag renamed, in ``folders``):
    renamed on disk, not downloaded again."""

    image: Image
    prior: JournalEntry
    to: str


@dataclass
class _Run(JournalCalls):
    options: ExportOptions
    client: TrainingClient
    journal: Journal
    sink: ImageSink
    project_id: str
    tag_names: dict[str, str]  # tag id -> name
    layout: FolderLayout | None
    existing: dict[str, int]  # what the destination held at the start: name -> size
    progress: ProgressSink | None
    tally: Counter[str] = field(default_factory=Counter)
    seen: set[str] = field(default_factory=set)  # image ids in the project during this run
    nbytes: int = 0
    moved_left: list[dict[str, str]] = field(default_factory=list)  # a container's blobs at an image's old place
    journal_lock: anyio.Lock = field(default_factory=anyio.Lock)
    links: ImageLinks = field(init=False)

    def __post_init__(self) -> None:
        self.links = ImageLinks(self.client, self.project_id)

    def advance(self, status: str, nbytes: int = 0) -> None:
        self.tally[status] += 1
        self.nbytes += nbytes
        if self.progress is not None:
            self.progress.advanced(
                ok=int(status == EXPORTED),
                failed=int(status in (FAILED, ERROR)),
                skipped=int(status in ("unchanged", "relabelled", SKIPPED)),
                nbytes=nbytes,
            )


async def run_export(
    client: TrainingClient, options: ExportOptions, *, progress: ProgressSink | None = None
) -> ExportResult:
    """Export the project's images with their labels into ``options.out_dir``.

    Errors about the whole run (project not found, wrong key, a state file of another run, a container
    that cannot be written) are raised; an image that cannot be downloaded is that image's outcome, named
    in the report. ``result.ok`` is False when any image failed or the counts differ from the service's.
    """
    with retry_notices(progress, client):  # the clients' retry waits reach progress.phase
        return await _run_export(client, options, progress)


async def _run_export(
    client: TrainingClient, options: ExportOptions, progress: ProgressSink | None
) -> ExportResult:
    started = time.time()
    location = options.location
    if location.path is not None and location.path.exists() and not location.path.is_dir():
        raise ConfigError(f"{location.path} exists and is not a folder")
    check_outputs(report=options.report, state=options.state)  # before any request, the path named
    project = await resolve_project(client, options.project)
    domains = await client.get_domains()
    settings = project.settings
    domain_id = settings.domain_id if settings is not None else None
    domain_type = next((d.type for d in domains if d.id == domain_id), None)
    kind = kind_of_project(domain_type, settings.classification_type if settings is not None else None)
    try:
        check_supported(options.format, kind)  # before anything is downloaded
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    tags = await client.get_tags(project.id)
    tag_names = {t.id: t.name for t in tags}
    layout = FolderLayout(tag_names.values()) if options.format == "folders" else None
    total = await client.get_image_count(project.id)
    fingerprint = {"project_id": project.id, "destination": _where(location, options.storage_environ), "format": options.format}
    try:
        async with open_sink(location, environ=options.storage_environ, create=True) as sink:
            existing = await _listing(sink, location.path)
            assert options.state is not None
            journal = await open_journal(options.state, job="export", fingerprint=fingerprint)
            run = _Run(options, client, journal, sink, project.id, tag_names, layout, existing, progress)
            start_progress(progress, total, client)
            # A destination that stops answering mid-run ends the run with its report (no label files: they
            # would name images the destination may not hold, and it does not answer).
            stop = Stop(storage_stop)

            async def finish() -> ExportResult:
                if stop.error is not None:
                    done = await _stopped(run, kind)
                else:
                    done = await _finish(run, project, tags, kind, domains)
                # listed from the project but given no outcome; the project's images never listed, apart
                not_reached = max(0, len(run.seen) - sum(run.tally.values()))
                stopped = stop.report(not_reached, not_listed=max(0, total - len(run.seen)))
                return await _result(run, options, project, done, started, total, stopped)

            return await run_job(run, journal, progress, lambda: _pipeline(run), finish, stop=stop)
    except (LocationError, CredentialError, MissingExtraError) as exc:
        raise ConfigError(str(exc)) from None
    except StorageError as exc:
        raise storage_stop(exc) or FatalRunError(str(exc)) from None  # the line says what next


def _where(location: StorageLocation, environ: Mapping[str, str] | None = None) -> str:
    if location.path is not None:
        return str(location.path.resolve())
    return _place(location, environ)


def _other_images(journal: Journal, existing: Mapping[str, int]) -> list[str]:
    """Worker thread, at the end of a run: the images the destination held at the start that no export into it
    wrote (the user's own; by then every image an export wrote has its row, a kill between the write and the
    row included): uploading the folder back with --untagged would send them too, so the report names them."""
    ours = {str((e.extra or {}).get("file")) for e in journal.entries(EXPORTED)}
    return sorted(n for n in existing if n not in ours and os.path.splitext(n)[1].lower() in IMAGE_EXTENSIONS)


# A local write's temporary file (".<name>.<mkstemp's 8 characters>.tmp"): a run killed mid-write leaves one.
_PARTIAL = re.compile(r"^\.[^/]+\.[a-z0-9_]{8}\.tmp$")


async def _listing(sink: ImageSink, folder: Path | None) -> dict[str, int]:
    """Every name the destination holds now, with its size: a resumed export skips what is there. In a
    folder, the half-written files of a killed run are removed first."""
    if folder is not None:
        await anyio.to_thread.run_sync(_remove_partials, folder)
    names: dict[str, int] = {}
    async for page in sink.pages():
        for entry in page:
            if not entry.name.startswith(f"{STATE_DIR}/"):
                names[entry.name] = entry.size
    return names


def _remove_partials(folder: Path) -> None:
    for parent, dirs, files in os.walk(folder):
        dirs[:] = [d for d in dirs if d != STATE_DIR]
        for name in files:
            if _PARTIAL.match(name):
                _remove(Path(parent) / name)


async def _stopped(run: _Run, kind: ProjectKind) -> dict[str, Any]:
    """What a stopped run's report holds in place of :func:`_finish`'s: no label files, no count check."""
    failures = await run.journal_call(lambda: [e for e in run.journal.failures() if e.key in run.seen])
    return {
        "kind": kind,
        "label_files": [],
        "not_carried": [],
        "labels_not_carried": [],
        "label_rows": {},
        "removed": [],
        "left_in_destination": [],
        "other_images": [],
        "count_check": {"ok": False, "line": None, "differences": [], "skipped": "the run stopped before its end"},
        "failures": failures,
        "state_counts": await run.journal_call(run.journal.counts),
    }


async def _result(
    run: _Run,
    options: ExportOptions,
    project: Project,
    done: dict[str, Any],
    started: float,
    total: int,
    stopped: dict[str, Any] | None = None,
) -> ExportResult:
    failed_now = run.tally[FAILED] + run.tally[ERROR]
    counts = {s: n for s, n in run.tally.items() if s not in ("unchanged", "relabelled", "downloads", "link_refreshes")}
    check = done["count_check"]
    ok = not failed_now and not done["failures"] and check["ok"] and not stopped
    location = options.location
    extra = {
        "project": {"id": project.id, "name": project.name},
        "out_dir": str(location),
        "destination": "container" if location.is_blob else "folder",
        "format": options.format,
        "kind": done["kind"],
        "label_files": done["label_files"],
        "label_file": done["label_files"][0] if done["label_files"] else None,
        "not_in_label_files": done["not_carried"],
        "labels_not_carried": done["labels_not_carried"],
        "label_rows": done["label_rows"],
        "removed": done["removed"],
        "left_in_destination": done["left_in_destination"],
        "other_images": done["other_images"],
        "upload_back": _upload_hint(options, done["label_files"], done["kind"], _domain_id(project)),
        "images_in_project": total,
        "unchanged": run.tally["unchanged"],
        "relabelled": run.tally["relabelled"],
        "downloads": run.links.downloads,
        "link_refreshes": run.links.refreshes,
        "link_refresh_calls": run.links.calls,
        "count_check": check,
        "state_file": str(options.state),
        "state_counts": done["state_counts"],
        "exit_code": 3 if stopped else 0 if ok else 1,
    }
    report = build_report(
        job="export", started=started, finished=time.time(), counts=counts, failures=done["failures"],
        client_stats=run.client.stats.snapshot() if hasattr(run.client, "stats") else None, extra=extra,
        nbytes=run.nbytes, stopped=stopped,
    )
    assert options.report is not None and options.state is not None
    await anyio.to_thread.run_sync(write_report, options.report, report)
    report["report_file"] = str(options.report)
    return ExportResult(
        ok=ok, report=report, state_file=Path(options.state), report_file=Path(options.report),
        out_dir=location.path,
    )


def _domain_id(project: Project) -> str | None:
    settings = project.settings
    return settings.domain_id if settings is not None else None


def _upload_hint(
    options: ExportOptions, label_files: list[str], kind: ProjectKind | None = None, domain_id: str | None = None
) -> str:
    """The command (quoted for a shell) that uploads the export back into a new project of the same kind.

    The label file that carries the most: for ``folders`` labels.csv (every tag of an image, not only its
    folder's, and the metadata), for a detection project's ``folders``/``csv`` regions.json (the boxes).
    ``--domain`` (the project's domain id: the service's ids are the same on every resource) and
    ``--classification-type`` make the same kind of project (the service's default is Multilabel). AutoML's
    JSONL holds every image it carries (untagged ones only with --include-untagged): no --untagged, which would
    send the images of the other split untagged; one run per split, the validation split's after the
    training's."""
    out = str(options.location)
    where = shlex.quote(out)
    same = ""
    if domain_id:
        same += f" --domain {shlex.quote(domain_id)}"
    if kind in ("multiclass", "multilabel"):
        same += f" --classification-type {kind.capitalize()}"
    if options.format == "yolo" and options.location.is_blob:  # a container run does not read YOLO's per-image files
        return yolo_in_container(options.location, f"--project NEW --create{same} --untagged ")
    files = [shlex.quote(f"{out.rstrip('/')}/{name}") for name in label_files]
    if options.format == "automl":
        first, *more = [f for f, name in zip(files, label_files) if name.endswith(".jsonl")] or files[:1]
        then = "".join(f"; then cvbulk upload {where} --project NEW --labels {f}" for f in more)
        return f"cvbulk upload {where} --project NEW --create{same} --labels {first}{then}"
    wanted = "regions.json" if kind == "detection" else "labels.csv" if options.format == "folders" else None
    chosen = next((f for f, name in zip(files, label_files) if name == wanted), None)
    if chosen is None and options.format != "folders" and files:
        chosen = files[0]
    labels = f" --labels {chosen}" if chosen is not None else ""
    return f"cvbulk upload {where} --project NEW --create{same} --untagged{labels}"


# -- the pipeline ---------------------------------------------------------------------------------


async def _pipeline(run: _Run) -> None:
    workers = run.options.max_concurrency
    page_send, page_recv = anyio.create_memory_object_stream[list["Image"]](2)
    work_send, work_recv = anyio.create_memory_object_stream[_Work](2 * workers)
    record_send, record_recv = anyio.create_memory_object_stream[tuple[JournalEntry, int]](4 * workers)
    images = run.client.iter_images(run.project_id, page_size=PAGE, order_by="Oldest")
    async with anyio.create_task_group() as tg:
        tg.start_soon(send_pages, images, page_send)
        tg.start_soon(_planner, run, page_recv, work_send, record_send.clone())
        tg.start_soon(_recorder, run, record_recv)
        for _ in range(workers):
            tg.start_soon(_worker, run, work_recv.clone(), record_send.clone())
        work_recv.close()
        record_send.close()


def _labels(run: _Run, image: Image) -> tuple[list[str], list[Region]]:
    names = run.tag_names
    regions = [
        (names.get(r.tag_id) or r.tag_name or str(r.tag_id), float(r.left), float(r.top), float(r.width),
         float(r.height))
        for r in (image.regions or ())
    ]
    tags = {names.get(t.tag_id) or t.tag_name or str(t.tag_id) for t in (image.tags or ())}
    tags |= {r[0] for r in regions}  # a region's tag is the image's tag
    return sorted(tags), sorted(regions)


def _describe(run: _Run, image: Image, file: str, width: int | None, height: int | None) -> dict[str, Any]:
    """What the journal keeps of an exported image: all the label writers need, without the service."""
    tags, regions = _labels(run, image)
    return {
        "file": file, "tags": tags, "regions": [list(r) for r in regions], "width": width, "height": height,
        "metadata": dict(image.metadata or {}), "created": image.created,
    }


def _relabel(run: _Run, image: Image, prior: JournalEntry | None) -> JournalEntry | _Move | None:
    """For an image exported before whose bytes are still in the destination: its journal row with today's
    labels and metadata, or the move to its new place in a local folder (None when it needs downloading)."""
    if prior is None or prior.status != EXPORTED or not prior.extra:
        return None
    x = prior.extra
    file = str(x.get("file") or "")
    if not file or run.existing.get(file) != prior.size:
        return None  # gone from the destination, or not whole
    ext = os.path.splitext(file)[1]
    tags, _ = _labels(run, image)
    want = image_relpath(run.options.format, image.id, ext, tags, layout=run.layout)
    if want != file:  # a folders export whose first tag changed: the image moves
        return _Move(image, prior, want) if run.options.location.path is not None else None
    fresh = _describe(run, image, file, x.get("width"), x.get("height"))
    if fresh == x:
        return prior
    return JournalEntry(image.id, prior.size, None, prior.sha256, EXPORTED, image_id=image.id,
                        attempts=prior.attempts, extra=fresh)


async def _planner(
    run: _Run,
    page_recv: ObjectReceiveStream[list[Image]],
    work_send: ObjectSendStream[_Work],
    record_send: ObjectSendStream[tuple[JournalEntry, int]],
) -> None:
    async with page_recv, work_send, record_send:
        async for page in page_recv:
            known = await run.journal_call(run.journal.get_many, [i.id for i in page])
            for image in page:
                run.seen.add(image.id)
                prior = known.get(image.id)
                same = _relabel(run, image, prior)
                if isinstance(same, _Move):
                    same = await _move(run, same)
                if same is prior and same is not None:
                    run.advance("unchanged")
                elif same is not None:
                    await record_send.send((same, -1))  # -1: relabelled, nothing downloaded
                else:
                    await work_send.send(_Work(image, prior))


async def _move(run: _Run, move: _Move) -> JournalEntry | None:
    """Rename an exported image to its new place in the folder; its row with the new place (None: it could
    not be moved, download it again)."""
    root = run.options.location.path
    assert root is not None
    old = str((move.prior.extra or {}).get("file"))
    try:
        await anyio.to_thread.run_sync(_rename, root, old, move.to)
    except OSError:
        return None
    run.existing[move.to] = run.existing.pop(old)
    x = move.prior.extra or {}
    return JournalEntry(move.image.id, move.prior.size, None, move.prior.sha256, EXPORTED, image_id=move.image.id,
                        attempts=move.prior.attempts,
                        extra=_describe(run, move.image, move.to, x.get("width"), x.get("height")))


def _rename(root: Path, old: str, new: str) -> None:
    target = root.joinpath(*new.split("/"))
    target.parent.mkdir(parents=True, exist_ok=True)
    os.replace(root.joinpath(*old.split("/")), target)
    _prune(root, old)


async def _worker(
    run: _Run, work_recv: ObjectReceiveStream[_Work], record_send: ObjectSendStream[tuple[JournalEntry, int]]
) -> None:
    async with work_recv, record_send:
        async for work in work_recv:
            await record_send.send(await _export_one(run, work))


async def _recorder(run: _Run, record_recv: ObjectReceiveStream[tuple[JournalEntry, int]]) -> None:
    """Outcomes in chunks, one transaction each: the file is in the destination before its row, so a kill
    in between costs one download again on resume, never a row without its file."""
    async with record_recv:
        async for first in record_recv:
            chunk = take_ready(first, record_recv, 256)
            await run.journal_call(run.journal.record, [entry for entry, _ in chunk])
            for entry, nbytes in chunk:
                if entry.status == SKIPPED:
                    run.seen.discard(entry.key)  # deleted from the project while we ran
                run.advance("relabelled" if nbytes < 0 else entry.status, max(nbytes, 0))


def _problem_entry(image: Image, problem: LinkProblem, attempts: int) -> JournalEntry:
    if problem.kind == "gone":
        return JournalEntry(image.id, None, None, None, SKIPPED, reason="deleted from the project during the export",
                            attempts=attempts)
    status = FAILED if problem.kind == "refused" else ERROR
    return JournalEntry(image.id, None, None, None, status, reason=problem.reason, attempts=attempts)


async def _export_one(run: _Run, work: _Work) -> tuple[JournalEntry, int]:
    image = work.image
    attempts = (work.prior.attempts if work.prior is not None else 0) + 1
    size: tuple[int, int] | str = "not downloaded"
    data = b""
    for _ in range(_VERIFY_ATTEMPTS):
        got = await download_image(run.client, run.links, image.id, image.original_image_uri)
        if isinstance(got, LinkProblem):
            return _problem_entry(image, got, attempts), 0
        fresh, data = got
        image = fresh or image
        size = await anyio.to_thread.run_sync(check_image, data, image.width, image.height)
        if not isinstance(size, str):
            break
    if isinstance(size, str):
        return JournalEntry(image.id, len(data), None, None, FAILED, reason=size, attempts=attempts), 0
    ext = sniff_extension(data)
    tags, _ = _labels(run, image)
    relpath = image_relpath(run.options.format, image.id, ext, tags, layout=run.layout)
    try:
        await run.sink.write_bytes(relpath, data, content_type=content_type(ext))
    except (AccessDeniedError, ContainerNotFoundError, StorageUnreachableError):
        raise  # the destination refuses every image: stop the run
    except (StorageError, OSError) as exc:
        return JournalEntry(image.id, None, None, None, ERROR, reason=f"could not write {relpath}: {_said(exc)}",
                            attempts=attempts), 0
    old = (work.prior.extra or {}).get("file") if work.prior is not None else None
    if old and old != relpath:
        run.existing.pop(old, None)
        if run.options.location.path is not None:
            await anyio.to_thread.run_sync(_remove_file, run.options.location.path, old)  # one copy per image
        else:
            run.moved_left.append({"image_id": image.id, "file": old, "reason": f"the image moved to {relpath}; "
                                   "delete its old copy in the container"})
    sha256 = await anyio.to_thread.run_sync(lambda: hashlib.sha256(data).hexdigest())
    extra = _describe(run, image, relpath, size[0], size[1])
    return JournalEntry(image.id, len(data), None, sha256, EXPORTED, image_id=image.id, attempts=attempts,
                        extra=extra), len(data)


def _said(exc: BaseException) -> str:
    # a storage error's own words for one item (the item named, not the whole location)
    return exc.reason if isinstance(exc, StorageError) else one_line(exc)


def _remove(path: Path) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def _remove_file(root: Path, relpath: str) -> None:
    """Remove a file the export wrote, and the folders it leaves empty (up to, not including, the root)."""
    _remove(root.joinpath(*relpath.split("/")))
    _prune(root, relpath)


def _prune(root: Path, relpath: str) -> None:
    parts = relpath.split("/")[:-1]
    while parts:
        try:
            os.rmdir(root.joinpath(*parts))  # only when empty
        except OSError:
            return
        parts.pop()


# -- the end: label files, model.json, the count check ---------------------------------------------


def _exported(run: _Run) -> list[ExportedImage]:
    """Worker thread: every image of the project the journal holds as exported (rows of images deleted
    from the project since an earlier run are left out)."""
    out: list[ExportedImage] = []
    for e in run.journal.entries(EXPORTED):
        if e.key not in run.seen:
            continue
        x = e.extra or {}
        regions = tuple(RegionLabel(str(r[0]), float(r[1]), float(r[2]), float(r[3]), float(r[4]))
                        for r in x.get("regions") or ())
        out.append(ExportedImage(
            id=e.key, file=str(x.get("file")), width=x.get("width"), height=x.get("height"),
            tags=tuple(x.get("tags") or ()), regions=regions, metadata=dict(x.get("metadata") or {}),
            created=x.get("created"),
        ))
    out.sort(key=lambda im: im.file)
    return out


async def _deleted_since(run: _Run) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """The files of images exported by an earlier run and deleted from the project since (not listed now, and
    GetImagesByIds does not know them): removed from a folder, so that OUT holds exactly the project (its
    folder uploaded back would bring them back); a container's are named (``left_in_destination``), this
    run cannot delete blobs. Returns (removed, left)."""
    rows = await run.journal_call(lambda: [e for e in run.journal.entries(EXPORTED) if e.key not in run.seen])
    if not rows:
        return [], list(run.moved_left)
    alive: set[str] = set()
    ids = [e.key for e in rows]
    for at in range(0, len(ids), 256):  # an image the listing missed is still the project's: never removed
        alive |= {i.id for i in await run.client.get_images_by_ids(run.project_id, ids[at : at + 256])}
    removed: list[dict[str, str]] = []
    left: list[dict[str, str]] = list(run.moved_left)
    done: list[JournalEntry] = []
    root = run.options.location.path
    for e in rows:
        file = str((e.extra or {}).get("file") or "")
        if e.key in alive or not file:
            continue
        if root is None:
            left.append({"image_id": e.key, "file": file,
                         "reason": "deleted from the project since an earlier export; delete it in the container"})
            continue
        await anyio.to_thread.run_sync(_remove_file, root, file)
        removed.append({"image_id": e.key, "file": file})
        done.append(JournalEntry(e.key, None, None, None, SKIPPED, image_id=e.key, attempts=e.attempts,
                                 reason=f"deleted from the project since an earlier export: {file} removed"))
    await run.journal_call(run.journal.record, done)
    return removed, left


async def _performance(client: TrainingClient, project_id: str, iteration: Any) -> Any:
    """An iteration's performance for model.json; None when it is not trained; the reason (a str) when the
    service does not give it: model.json says so, the images and label files still go out."""
    from ..client._errors import AuthenticationError, CustomVisionError

    if (iteration.status or "").lower() != "completed":
        return None
    with anyio.move_on_after(PERFORMANCE_DEADLINE):
        try:
            return await client.get_iteration_performance(project_id, iteration.id, threshold=0.5,
                                                          overlap_threshold=0.3)
        except AuthenticationError:
            raise  # a wrong key: the run stops as for any other call
        except CustomVisionError as exc:
            return f"GetIterationPerformance failed: {one_line(exc)}"
    return f"GetIterationPerformance gave no answer within {PERFORMANCE_DEADLINE:g} s"


async def _finish(run: _Run, project: Project, tags: list[Any], kind: ProjectKind, domains: list[Any]) -> dict[str, Any]:
    client, options = run.client, run.options
    removed, left = await _deleted_since(run)
    images = await run.journal_call(_exported, run)
    fmt_options = FormatOptions(
        image_url_prefix=options.image_url_prefix, validation_split=options.validation_split,
        include_untagged=options.include_untagged,
        negative_tags=frozenset(t.name for t in tags if (t.type or "").lower() == "negative"),
    )
    memory = MemorySink()
    written = await anyio.to_thread.run_sync(
        lambda: write_labels(options.format, images, kind, memory, fmt_options, tag_names=sorted(run.tag_names.values()),
                             layout=run.layout)
    )
    iterations = []
    for it in await client.get_iterations(project.id):
        iterations.append((it, await _performance(client, project.id, it)))
    write_model_json(memory, project, iterations, domains={d.id: d.name for d in domains}, threshold=0.5,
                     overlap_threshold=0.3, exported_at=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
    for name, text in sorted(memory.files.items()):
        ctype = "application/json" if name.endswith(".json") else "text/plain; charset=utf-8"
        await run.sink.write_text(name, text, content_type=ctype)
    check = await check_counts(client, project.id, tags, images, len(run.seen))
    failures = await run.journal_call(lambda: [e for e in run.journal.failures() if e.key in run.seen])
    return {
        "kind": kind,
        "label_files": list(written.files),
        "not_carried": [{"image_id": i, "reason": r} for i, r in written.skipped],
        "labels_not_carried": [{"image_id": i, "reason": r} for i, r in written.dropped],
        "label_rows": dict(written.rows),
        "removed": removed,
        "left_in_destination": left,
        "other_images": [n for n in await run.journal_call(_other_images, run.journal, run.existing)
                         if n not in {r["file"] for r in removed}],
        "count_check": check,
        "failures": failures,
        "state_counts": await run.journal_call(run.journal.counts),
    }
