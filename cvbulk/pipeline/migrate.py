"""``cvbulk migrate``: a project's images, tags, regions and metadata into another project, possibly on
another resource, at both sides' rate limits, resumable.

list -> plan -> group -> send -> record, joined by bounded memory object streams:

- *list* pages through the source's images (``take`` 256, oldest first: paging stays stable);
- *plan* drops the images the journal (keyed by the source image id) holds as migrated, maps the others'
  tags to the target's (by name, each tag created once) and groups them into requests
  (``_migrate_send.Grouper``);
- N *senders* mark their batch ``sending`` in the journal, send it by URL or by download and re-upload
  (``_migrate_send.MigrateSender``), and record every image's outcome with its target image id in one
  transaction. A run killed at any moment resumes without loss or duplicate: an image of a batch left
  ``sending`` is the same content when re-sent, the target answers ``OKDuplicate``, and it counts as
  migrated.

Each side has its own client and so its own Pacer (the service counts each resource separately). At the
end the image counts per tag, untagged and in total are compared on both sides; a difference makes the
exit status 1.
"""

from __future__ import annotations

import hashlib
import time
from collections import Counter
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ._migrate_send import BY_MODES, Grouper, MigrateBatch, MigrateItem, MigrateOutcome, MigrateSender
from ._migrate_setup import TagMapper, target_project
from .batch import DEFAULT_BATCH_BYTES, TaggedRegion
from .engine import (
    PAGE,
    STATE_DIR,
    JournalCalls,
    ProgressSink,
    check_outputs,
    open_journal,
    retry_notices,
    run_job,
    send_pages,
    send_recorded,
    start_progress,
)
from .errors import ConfigError
from .journal import DUPLICATE, ERROR, FAILED, FINAL_OK, SENDING, UPLOADED, Journal, JournalEntry
from .project import resolve_project
from .report import build_report, write_report
from .results import MigrateResult

if TYPE_CHECKING:
    from ..client import Image, Project, TrainingClient

__all__ = ["MigrateOptions", "MigrateResult", "run_migrate", "compare_counts", "default_state_path", "BY_MODES"]


@dataclass
class MigrateOptions:
    """Everything ``cvbulk migrate`` takes besides the two connections."""

    from_project: str
    to_project: str
    create: bool = False
    by: str = "auto"  # url | upload | auto
    state: Path | None = None
    report: Path | None = None
    max_concurrency: int = 8  # batches in flight on the target
    batch_bytes: int = DEFAULT_BATCH_BYTES

    def __post_init__(self) -> None:
        if self.by not in BY_MODES:
            raise ConfigError(f"{{opt:by}} must be one of {', '.join(BY_MODES)}, not {self.by!r}")
        if self.max_concurrency < 1:
            raise ConfigError("{opt:max_concurrency} must be at least 1")
        if self.batch_bytes < 1024:
            raise ConfigError("{opt:batch_bytes} must be at least 1024")
        self.state = Path(self.state) if self.state is not None else None
        self.report = Path(self.report) if self.report is not None else None


def default_state_path(source_endpoint: str, from_project: str, target_endpoint: str, to_project: str) -> Path:
    """``.cvbulk/migrate-<hash>.sqlite`` under the current directory: the same command finds it again."""
    digest = hashlib.sha256(
        f"{source_endpoint.rstrip('/')}\0{from_project}\0{target_endpoint.rstrip('/')}\0{to_project}".encode()
    ).hexdigest()[:12]
    return Path.cwd() / STATE_DIR / f"migrate-{digest}.sqlite"


@dataclass
class _Run(JournalCalls):
    options: MigrateOptions
    source: TrainingClient
    target: TrainingClient
    source_project_id: str
    journal: Journal
    tags: TagMapper
    sender: MigrateSender
    progress: ProgressSink | None
    tally: Counter = field(default_factory=Counter)
    by: Counter = field(default_factory=Counter)
    nbytes: int = 0
    journal_lock: anyio.Lock = field(default_factory=anyio.Lock)

    def advance(self, statuses: list[str], nbytes: int = 0) -> None:
        self.tally.update(statuses)
        if self.progress is not None:
            ok = sum(1 for s in statuses if s in (UPLOADED, DUPLICATE))
            failed = sum(1 for s in statuses if s in (FAILED, ERROR))
            self.progress.advanced(ok=ok, failed=failed, skipped=len(statuses) - ok - failed, nbytes=nbytes)


async def run_migrate(
    source: TrainingClient, target: TrainingClient, options: MigrateOptions, *, progress: ProgressSink | None = None
) -> MigrateResult:
    """Copy ``options.from_project`` (on ``source``) into ``options.to_project`` (on ``target``).

    Errors about the whole run (a project not found, a wrong key, incompatible projects) are raised;
    errors about one image are recorded as its outcome and named in the report.
    """
    with retry_notices(progress, source, target):  # the clients' retry waits reach progress.phase
        return await _run_migrate(source, target, options, progress)


async def _run_migrate(
    source: TrainingClient, target: TrainingClient, options: MigrateOptions, progress: ProgressSink | None
) -> MigrateResult:
    started = time.time()
    # before any request (the target may be created next): the default state file's folder too
    check_outputs(report=options.report, state=options.state or Path.cwd() / STATE_DIR / "migrate.sqlite")
    src = await resolve_project(source, options.from_project)
    dst, created = await target_project(source, target, src, options.to_project, create=options.create)
    same_side = source.endpoint.rstrip("/").lower() == target.endpoint.rstrip("/").lower()
    if same_side and src.id == dst.id:
        raise ConfigError("the source and the target are the same project")
    source_tags = await source.get_tags(src.id)
    tags = TagMapper(target, dst.id)
    await tags.load(source_tags)
    total = await source.get_image_count(src.id)

    state = options.state or default_state_path(source.endpoint, src.id, target.endpoint, dst.id)
    report_path = options.report or state.with_name(state.stem + ".report.json")
    fingerprint = {
        "source": {"endpoint": source.endpoint, "project_id": src.id},
        "target": {"endpoint": target.endpoint, "project_id": dst.id},
    }
    journal = await open_journal(state, job="migrate", fingerprint=fingerprint)
    sender = MigrateSender(
        source, target, dst.id, by=options.by, batch_bytes=options.batch_bytes, source_project_id=src.id
    )
    run = _Run(options, source, target, src.id, journal, tags, sender, progress)
    start_progress(progress, total, target)  # the target's pacer is the one that limits

    async def finish() -> tuple[list[Any], dict[str, int]]:
        failures = await run.journal_call(lambda: list(journal.failures()))
        return failures, await run.journal_call(journal.counts)

    failures, state_counts = await run_job(run, journal, progress, lambda: _pipeline(run), finish)
    comparison = await compare_counts(source, src.id, target, dst.id)
    finished = time.time()
    failed_now = run.tally[FAILED] + run.tally[ERROR]
    ok = not failed_now and bool(comparison["equal"])
    extra = {
        "source": _side(source, src),
        "target": {**_side(target, dst), "created": created},
        "by": options.by,
        "mode": sender.mode,
        "sent_by": dict(run.by),
        "url_fallbacks": sender.fallbacks,
        "metadata_updated": sender.metadata_updated,
        "metadata_not_updated": sender.metadata_not_updated[:100],
        "splits": sender.splits,
        "bytes_downloaded": sender.bytes_downloaded,
        "link_refreshes": sender.links.refreshes,  # source links that had expired, renewed
        "tags_created": sorted(tags.created),
        "images_in_source": total,
        "unchanged": run.tally["unchanged"],
        "migrated": run.tally[UPLOADED] + run.tally[DUPLICATE],
        "comparison": comparison,
        "state_file": str(state),
        "state_counts": state_counts,
        "exit_code": 0 if ok else 1,
    }
    counts = {s: n for s, n in run.tally.items() if s != "unchanged"}
    report = build_report(
        job="migrate", started=started, finished=finished, counts=counts, failures=failures,
        client_stats={"source": source.stats.snapshot(), "target": target.stats.snapshot()},
        extra=extra, nbytes=run.nbytes,
    )
    await anyio.to_thread.run_sync(write_report, report_path, report)
    report["report_file"] = str(report_path)
    return MigrateResult(
        ok=ok, report=report, state_file=Path(state), report_file=Path(report_path), comparison=comparison
    )


def _side(client: Any, project: Project) -> dict[str, Any]:
    return {"endpoint": client.endpoint, "project_id": project.id, "project_name": project.name}


async def compare_counts(source: TrainingClient, source_id: str, target: TrainingClient, target_id: str) -> dict[str, Any]:
    """Images per tag (by name), untagged and in total on both sides; ``equal`` when all agree."""

    async def per_tag(client: TrainingClient, pid: str) -> dict[str, int]:
        out: dict[str, int] = {}
        for t in await client.get_tags(pid):
            n = t.image_count
            if n is None:  # not every answer carries imageCount
                n = await client.get_tagged_image_count(pid, tag_ids=[t.id])
            out[t.name] = int(n)
        return out

    src_tags, dst_tags = await per_tag(source, source_id), await per_tag(target, target_id)
    dst_lower = {name.lower(): n for name, n in dst_tags.items()}
    tags = {name: {"source": n, "target": dst_lower.get(name.lower(), 0)} for name, n in sorted(src_tags.items())}
    untagged = {
        "source": await source.get_untagged_image_count(source_id),
        "target": await target.get_untagged_image_count(target_id),
    }
    images = {"source": await source.get_image_count(source_id), "target": await target.get_image_count(target_id)}
    differ = sorted(name for name, c in tags.items() if c["source"] != c["target"])
    equal = not differ and untagged["source"] == untagged["target"] and images["source"] == images["target"]
    return {"equal": equal, "images": images, "untagged": untagged, "tags": tags, "tags_differ": differ}


# -- the pipeline ---------------------------------------------------------------------------------


async def _pipeline(run: _Run) -> None:
    senders = run.options.max_concurrency
    page_send, page_recv = anyio.create_memory_object_stream[list["Image"]](2)
    batch_send, batch_recv = anyio.create_memory_object_stream[MigrateBatch](senders)
    async with anyio.create_task_group() as tg:
        tg.start_soon(send_pages, run.source.iter_images(run.source_project_id, page_size=PAGE, order_by="Oldest"),
                      page_send)
        tg.start_soon(_planner, run, page_recv, batch_send)
        for _ in range(senders):
            tg.start_soon(_sender, run, batch_recv.clone())
        batch_recv.close()


async def _item(run: _Run, image: Image, prior: JournalEntry | None) -> MigrateItem:
    regions = []
    for r in image.regions or ():
        tid = await run.tags.resolve(r.tag_id, r.tag_name)
        regions.append(TaggedRegion(tid, float(r.left), float(r.top), float(r.width), float(r.height)))
    region_tags = {r.tag_id for r in regions}
    tag_ids = []
    for t in image.tags or ():
        tid = await run.tags.resolve(t.tag_id, t.tag_name)
        if tid not in region_tags and tid not in tag_ids:
            tag_ids.append(tid)  # a region's tag comes with its region
    return MigrateItem(
        source_id=image.id,
        url=image.original_image_uri,
        tag_ids=tuple(tag_ids),
        regions=tuple(regions),
        metadata=tuple(sorted((str(k), str(v)) for k, v in (image.metadata or {}).items())),
        prior_status=prior.status if prior is not None else None,
        attempts=prior.attempts if prior is not None else 0,
    )


async def _planner(
    run: _Run, page_recv: ObjectReceiveStream[list[Image]], batch_send: ObjectSendStream[MigrateBatch]
) -> None:
    grouper = Grouper()
    async with page_recv, batch_send:
        async for page in page_recv:
            known = await run.journal_call(run.journal.get_many, [i.id for i in page])
            unchanged = 0
            for image in page:
                prior = known.get(image.id)
                if prior is not None and prior.status in FINAL_OK:
                    unchanged += 1
                    continue
                for batch in grouper.add(await _item(run, image, prior)):
                    await batch_send.send(batch)
            if unchanged:
                run.advance(["unchanged"] * unchanged)
        for batch in grouper.flush():
            await batch_send.send(batch)


def _entry(o: MigrateOutcome) -> JournalEntry:
    return JournalEntry(
        key=o.item.source_id, size=o.nbytes or None, mtime_ns=None, sha256=None, status=o.status,
        image_id=o.image_id, reason=o.reason, attempts=o.item.attempts + 1,
        extra={"by": o.detail} if o.detail else None,
    )


async def _sender(run: _Run, batch_recv: ObjectReceiveStream[MigrateBatch]) -> None:
    journal = run.journal
    async with batch_recv:
        async for batch in batch_recv:
            intent = [JournalEntry(i.source_id, None, None, None, SENDING, attempts=i.attempts) for i in batch.items]
            outcomes = await send_recorded(run, journal, intent, partial(run.sender.send, batch), _entry)
            nbytes = sum(o.nbytes for o in outcomes)
            run.nbytes += nbytes
            run.by.update(o.detail for o in outcomes if o.detail and o.status in (UPLOADED, DUPLICATE))
            run.advance([o.status for o in outcomes], nbytes)
