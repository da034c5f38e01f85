"""``cvbulk export``: a project's images and labels out to disk, in a layout ``cvbulk upload`` reads back.

list -> plan -> download -> write -> record, joined by bounded memory object streams:

- *list* pages through every image of the project (``take`` 256, oldest first so that images added
  meanwhile land at the end and paging stays stable);
- *plan* looks each page up in the journal (keyed by the service's image id) and drops images already
  exported whose file is still on disk where their current labels put it;
- N *workers* download the original images (``client.download``; the client's Pacer keeps the rate),
  write each file atomically under a name made of the image id, and record the outcome with its labels
  in the journal, so a run killed at any moment resumes where it stopped;
- at the end the label file of the format is written from the journal (see ``_export_layout``).
"""

from __future__ import annotations

import hashlib
import io
import os
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ..client._errors import AuthenticationError, CustomVisionError, NotFoundError
from ._export_layout import (
    FOLDERS_MANIFEST,
    FORMATS,
    atomic_write_bytes,
    folder_carries_labels,
    image_relpath,
    iter_rows,
    label_file_for,
    sniff_extension,
    write_label_file,
)
from ._reasons import one_line
from .engine import (
    PAGE,
    STATE_DIR,
    JournalCalls,
    ProgressSink,
    open_journal,
    run_job,
    send_pages,
    start_progress,
    take_ready,
)
from .errors import ConfigError
from .journal import ERROR, EXPORTED, FAILED, Journal, JournalEntry
from .project import resolve_project
from .report import build_report, write_report
from .results import ExportResult

if TYPE_CHECKING:
    from ..client import Image, TrainingClient

__all__ = ["ExportOptions", "ExportResult", "run_export", "FORMATS", "STATE_DIR"]


@dataclass
class ExportOptions:
    """Everything ``cvbulk export`` takes besides the connection."""

    project: str
    out_dir: Path
    format: str = "folders"
    state: Path | None = None
    report: Path | None = None
    max_concurrency: int = 16  # downloads in flight (the client's Pacer may allow fewer)

    def __post_init__(self) -> None:
        self.out_dir = Path(self.out_dir)
        if self.format not in FORMATS:
            raise ConfigError(f"{{opt:format}} must be one of {', '.join(FORMATS)}, not {self.format!r}")
        if self.max_concurrency < 1:
            raise ConfigError("{opt:max_concurrency} must be at least 1")
        self.state = Path(self.state) if self.state is not None else self.out_dir / STATE_DIR / "export.sqlite"
        if self.report is None:
            self.report = self.state.with_name(self.state.stem + ".report.json")
        self.report = Path(self.report)


@dataclass(frozen=True, slots=True)
class _Work:
    image: Image
    tags: tuple[str, ...]
    regions: tuple[tuple[str, float, float, float, float], ...]
    prior: JournalEntry | None


@dataclass
class _Run(JournalCalls):
    options: ExportOptions
    client: TrainingClient
    journal: Journal
    tag_names: dict[str, str]  # tag id -> name
    progress: ProgressSink | None
    tally: Counter = field(default_factory=Counter)
    nbytes: int = 0
    journal_lock: anyio.Lock = field(default_factory=anyio.Lock)

    def advance(self, status: str, nbytes: int = 0) -> None:
        self.tally[status] += 1
        if self.progress is not None:
            self.progress.advanced(
                ok=int(status == EXPORTED),
                failed=int(status in (FAILED, ERROR)),
                skipped=int(status == "unchanged"),
                nbytes=nbytes,
            )


async def run_export(client: TrainingClient, options: ExportOptions, *, progress: ProgressSink | None = None) -> ExportResult:
    """Export the project's images with their labels into ``options.out_dir``.

    Errors about the whole run (project not found, wrong key, a state file of another run) are raised;
    an image that cannot be downloaded is recorded as that image's outcome and named in the report.
    """
    started = time.time()
    out_dir = options.out_dir
    if out_dir.exists() and not out_dir.is_dir():
        raise ConfigError(f"{out_dir} exists and is not a folder")
    project = await resolve_project(client, options.project)
    tags = await client.get_tags(project.id)
    tag_names = {t.id: t.name for t in tags}
    total = await client.get_image_count(project.id)
    fingerprint = {"project_id": project.id, "out_dir": str(out_dir.resolve()), "format": options.format}
    journal = await open_journal(options.state, job="export", fingerprint=fingerprint)
    run = _Run(options, client, journal, tag_names, progress)
    start_progress(progress, total, client)

    async def finish() -> tuple[Any, ...]:
        labels = await run.journal_call(_write_labels, run, sorted(tag_names.values()))
        failures = await run.journal_call(lambda: list(journal.failures()))
        return (*labels, failures, await run.journal_call(journal.counts))

    label_file, multi_tag, not_carried, failures, state_counts = await run_job(
        run, journal, progress, lambda: _pipeline(run, project.id), finish
    )
    finished = time.time()
    failed_now = run.tally[FAILED] + run.tally[ERROR]
    counts = {s: n for s, n in run.tally.items() if s != "unchanged"}
    extra = {
        "project": {"id": project.id, "name": project.name},
        "out_dir": str(out_dir),
        "format": options.format,
        "label_file": str(label_file) if label_file is not None else None,
        "upload_back": _upload_hint(options, label_file),
        "images_in_project": total,
        "unchanged": run.tally["unchanged"],
        "multi_tag_images": multi_tag,
        # region formats carry a tag only with a box: tags without one are lost on the way back
        "images_with_tags_without_regions": not_carried if options.format in ("regions-json", "coco") else 0,
        "state_file": str(options.state),
        "state_counts": state_counts,
        "exit_code": 1 if failed_now else 0,
    }
    report = build_report(
        job="export", started=started, finished=finished, counts=counts, failures=failures,
        client_stats=client.stats.snapshot() if hasattr(client, "stats") else None, extra=extra,
        nbytes=run.nbytes,
    )
    await anyio.to_thread.run_sync(write_report, options.report, report)
    report["report_file"] = str(options.report)
    return ExportResult(
        ok=not failed_now, report=report, state_file=Path(options.state), report_file=Path(options.report),
        out_dir=out_dir,
    )


def _upload_hint(options: ExportOptions, label_file: Path | None) -> str:
    out = str(options.out_dir)
    if options.format == "folders" and label_file is None:
        return f"cvbulk upload {out} --project NEW --create --untagged"
    return f"cvbulk upload {out} --project NEW --create --untagged --labels {label_file}"


# -- the pipeline ---------------------------------------------------------------------------------


async def _pipeline(run: _Run, project_id: str) -> None:
    workers = run.options.max_concurrency
    page_send, page_recv = anyio.create_memory_object_stream[list["Image"]](2)
    work_send, work_recv = anyio.create_memory_object_stream[_Work](2 * workers)
    record_send, record_recv = anyio.create_memory_object_stream[tuple[JournalEntry, int]](4 * workers)
    async with anyio.create_task_group() as tg:
        tg.start_soon(send_pages, run.client.iter_images(project_id, page_size=PAGE, order_by="Oldest"), page_send)
        tg.start_soon(_planner, run, page_recv, work_send)
        tg.start_soon(_recorder, run, record_recv)
        for _ in range(workers):
            tg.start_soon(_worker, run, work_recv.clone(), record_send.clone())
        work_recv.close()
        record_send.close()


def _labels(run: _Run, image: Image) -> tuple[tuple[str, ...], tuple[tuple[str, float, float, float, float], ...]]:
    names = run.tag_names
    regions = tuple(
        (names.get(r.tag_id) or r.tag_name or str(r.tag_id), float(r.left), float(r.top), float(r.width), float(r.height))
        for r in (image.regions or ())
    )
    tags = {names.get(t.tag_id) or t.tag_name or str(t.tag_id) for t in (image.tags or ())}
    tags |= {r[0] for r in regions}  # a region's tag is the image's tag
    return tuple(sorted(tags)), regions


def _done_flags(options: ExportOptions, known: dict[str, Any], labelled: list[tuple[Any, ...]]) -> list[bool]:
    return [_is_done(options, known.get(i.id), t, r) for i, t, r in labelled]


def _is_done(options: ExportOptions, prior: JournalEntry | None, tags: tuple[str, ...], regions: Any) -> bool:
    """Exported before, with the same labels, and the file still there with its size."""
    if prior is None or prior.status != EXPORTED or not prior.extra:
        return False
    x = prior.extra
    if list(x.get("tags") or []) != list(tags):
        return False
    if [list(r) for r in x.get("regions") or []] != [list(r) for r in regions]:
        return False
    path = options.out_dir / str(x.get("file"))
    try:
        return path.stat().st_size == prior.size
    except OSError:
        return False


async def _planner(
    run: _Run, page_recv: ObjectReceiveStream[list[Image]], work_send: ObjectSendStream[_Work]
) -> None:
    async with page_recv, work_send:
        async for page in page_recv:
            known = await run.journal_call(run.journal.get_many, [i.id for i in page])
            labelled = [(image, *_labels(run, image)) for image in page]
            done = await anyio.to_thread.run_sync(_done_flags, run.options, known, labelled)
            for (image, tags, regions), skip in zip(labelled, done):
                if skip:
                    run.advance("unchanged")
                    continue
                await work_send.send(_Work(image, tags, regions, known.get(image.id)))


async def _worker(
    run: _Run, work_recv: ObjectReceiveStream[_Work], record_send: ObjectSendStream[tuple[JournalEntry, int]]
) -> None:
    async with work_recv, record_send:
        async for work in work_recv:
            await record_send.send(await _export_one(run, work))


async def _recorder(run: _Run, record_recv: ObjectReceiveStream[tuple[JournalEntry, int]]) -> None:
    """Outcomes in chunks, one transaction each: the file is on disk before its row, so a kill in
    between costs one download again on resume, never a row without its file."""
    async with record_recv:
        async for first in record_recv:
            chunk = take_ready(first, record_recv, 256)
            await run.journal_call(run.journal.record, [entry for entry, _ in chunk])
            for entry, nbytes in chunk:
                run.advance(entry.status, nbytes)


async def _export_one(run: _Run, work: _Work) -> tuple[JournalEntry, int]:
    image = work.image
    attempts = (work.prior.attempts if work.prior is not None else 0) + 1
    url = image.original_image_uri
    if not url:
        return JournalEntry(image.id, None, None, None, FAILED, reason="the service gave no image URI",
                            attempts=attempts), 0
    try:
        data = await run.client.download(url)
    except AuthenticationError:
        raise  # the key is wrong for every image: stop the run
    except NotFoundError as exc:
        reason = f"the image is gone from the service ({one_line(exc)})"
        return JournalEntry(image.id, None, None, None, FAILED, reason=reason, attempts=attempts), 0
    except CustomVisionError as exc:  # retried by the client as far as its budget went
        return JournalEntry(image.id, None, None, None, ERROR, reason=one_line(exc), attempts=attempts), 0
    written = await anyio.to_thread.run_sync(_write_image, run.options, work, data)
    relpath, sha256, width, height = written
    extra = {
        "file": relpath,
        "tags": list(work.tags),
        "regions": [list(r) for r in work.regions],
        "width": width,
        "height": height,
    }
    entry = JournalEntry(image.id, len(data), None, sha256, EXPORTED, image_id=image.id, attempts=attempts,
                         extra=extra)
    return entry, len(data)


def _write_image(options: ExportOptions, work: _Work, data: bytes) -> tuple[str, str, int | None, int | None]:
    """Worker thread: name, write atomically, hash; remove the file of an earlier run that moved."""
    relpath = image_relpath(options.format, work.image.id, work.tags, sniff_extension(data))
    atomic_write_bytes(options.out_dir / relpath, data)
    old = (work.prior.extra or {}).get("file") if work.prior is not None else None
    if old and old != relpath:
        try:
            os.unlink(options.out_dir / old)  # its labels changed since: one copy per image
        except OSError:
            pass
    width, height = work.image.width, work.image.height
    if not width or not height:
        width, height = _image_size(data)
    return relpath, hashlib.sha256(data).hexdigest(), width, height


def _image_size(data: bytes) -> tuple[int | None, int | None]:
    from PIL import Image as PILImage

    try:
        with PILImage.open(io.BytesIO(data)) as im:  # reads the header only
            return im.size
    except Exception:  # an unreadable image still exports; COCO gets 0 for its size
        return None, None


def _write_labels(run: _Run, tag_names: list[str]) -> tuple[Path | None, int, int]:
    """Worker thread: the label file of the format, from every image the journal holds as exported;
    with the number of images a folder cannot label (several tags) and of images with a tag no region
    carries (lost by the region formats)."""
    fmt = run.options.format

    def rows() -> Any:
        return iter_rows(run.journal.entries(EXPORTED))

    multi_tag = not_carried = 0
    for _, tags, regions, _, _ in rows():
        multi_tag += not folder_carries_labels(tags)
        not_carried += bool(set(tags) - {r[0] for r in regions})
    if fmt == "folders":
        # A manifest only when folders cannot carry every image's labels.
        if not multi_tag:
            stale = run.options.out_dir / FOLDERS_MANIFEST
            if stale.exists():
                stale.unlink()
            return None, 0, not_carried
        return write_label_file("folders", run.options.out_dir, rows, tag_names), multi_tag, not_carried
    assert label_file_for(fmt) is not None
    return write_label_file(fmt, run.options.out_dir, rows, tag_names), multi_tag, not_carried
