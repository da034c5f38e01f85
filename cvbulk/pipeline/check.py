"""``cvbulk check``: compare a local tree or a container (and its labels) with a project, as ``rclone check`` does.

Images are matched by content, not by name (the service keeps no file names): the sha256 of the bytes
``cvbulk upload`` would send for each local file (``prepare_image``: the file's own bytes when it passes
through, the fixed bytes otherwise; fixes are deterministic) against the sha256 of each project image's
original bytes, downloaded through the client (so paced like every other call) a few at a time and
dropped once hashed. Each local path and each unmatched project image ends in one outcome:

``=`` in both, same tags (and, when the labels have boxes, the same boxes: a box is a tag and normalised
coordinates within ``BOX_TOLERANCE``); ``*`` in both, tags or boxes differ; ``-`` only local; ``+`` only in the project;
``!`` a local file that could not be compared (unreadable, or one upload would reject: the reason says);
``.`` a file upload skips by rule (not an image by its extension, hidden): listed, never a difference (an
export's label files and model.json sit next to its images).

The trees match when every outcome is ``=`` (or ``.``).

ROOT may be a container location (``az://container/prefix``, as ``cvbulk upload`` takes it): its blobs are
listed a page at a time, each read whole (a few at once) and judged as ``cvbulk upload --via bytes`` would
(one the service fetched by URL is stored byte for byte, so its hash is the blob's), the labels taken as
upload takes them (virtual folders, or a label file on this machine or in the container).
"""

from __future__ import annotations

import hashlib
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import AsyncExitStack
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import anyio
import anyio.to_thread

if sys.version_info < (3, 11):  # pragma: no cover
    from exceptiongroup import BaseExceptionGroup

from ..client._errors import AuthenticationError, CustomVisionError
from ._header import check_head
from ._reasons import one_line
from .engine import unwrap
from .errors import FatalRunError
from .labels import LabelProblem, Labels, LabelSource, open_label_source
from .prepare import TRAINING_LIMITS, Rejected, prepare_image
from .project import resolve_project
from .scan import _BY_RULE, ScanEntry, ScanProblem, excluded_by, scan_tree

if TYPE_CHECKING:
    from ..client import Image, TrainingClient

__all__ = [
    "MATCH",
    "ONLY_LOCAL",
    "ONLY_PROJECT",
    "TAGS_DIFFER",
    "NOT_COMPARED",
    "SKIPPED",
    "OUTCOMES",
    "CheckOptions",
    "CheckEntry",
    "CheckResult",
    "ProgressCallback",
    "run_check",
]

MATCH = "="
ONLY_LOCAL = "-"
ONLY_PROJECT = "+"
TAGS_DIFFER = "*"
NOT_COMPARED = "!"
SKIPPED = "."
#: Each outcome and the word the summary and the JSON use for it.
OUTCOMES = {
    MATCH: "match",
    TAGS_DIFFER: "tags_differ",
    ONLY_LOCAL: "only_local",
    ONLY_PROJECT: "only_in_project",
    NOT_COMPARED: "not_compared",
    SKIPPED: "skipped",
}

#: progress(phase, done, total): phase is a short phrase ("hashing local files"); total None = unknown.
ProgressCallback = Callable[[str, int, "int | None"], None]


@dataclass(frozen=True)
class CheckOptions:
    """What ``cvbulk check`` compares."""

    root: Path | str  # a folder, or a container location (az://..., https://...)
    project: str
    labels: str = "folders"  # "folders" or a label file, as `cvbulk upload --labels` takes
    exclude: tuple[str, ...] = ()  # the same patterns as `cvbulk upload --exclude`
    include_hidden: bool = False
    max_concurrency: int = 8  # downloads in flight (links on a storage host: not paced as training calls)
    hash_threads: int = 4  # local files read and hashed at once

    def __post_init__(self) -> None:
        if self.max_concurrency < 1 or self.hash_threads < 1:
            raise ValueError("max_concurrency and hash_threads must be at least 1")


@dataclass(frozen=True)
class CheckEntry:
    """One line of the comparison: a local path, a project image, or both."""

    outcome: str
    path: str | None = None  # relative to ROOT, posix
    image_id: str | None = None
    local_tags: tuple[str, ...] | None = None
    project_tags: tuple[str, ...] | None = None
    reason: str = ""

    def to_json(self) -> dict[str, Any]:
        return {
            "outcome": OUTCOMES[self.outcome],
            "path": self.path,
            "image_id": self.image_id,
            "local_tags": list(self.local_tags) if self.local_tags is not None else None,
            "project_tags": list(self.project_tags) if self.project_tags is not None else None,
            "reason": self.reason or None,
        }


@dataclass
class CheckResult:
    project_id: str
    project_name: str
    entries: list[CheckEntry] = field(default_factory=list)

    @property
    def counts(self) -> dict[str, int]:
        counts = dict.fromkeys(OUTCOMES.values(), 0)
        for entry in self.entries:
            counts[OUTCOMES[entry.outcome]] += 1
        return counts

    @property
    def matched(self) -> bool:
        return all(entry.outcome in (MATCH, SKIPPED) for entry in self.entries)

    def to_json(self) -> dict[str, Any]:
        return {
            "project": {"id": self.project_id, "name": self.project_name},
            "matched": self.matched,
            "counts": self.counts,
            "entries": [entry.to_json() for entry in self.entries],
        }


@dataclass(frozen=True)
class _Local:
    relpath: str
    sha256: str | None
    tags: tuple[str, ...]
    problem: str = ""
    skipped: bool = False  # upload skips it by rule (extension, hidden): not an image to compare
    boxes: tuple[_Box, ...] | None = None  # None: the labels have no boxes to compare


def _not_taken(found: ScanProblem) -> _Local:
    return _Local(found.relpath, None, (), found.reason, skipped=found.kind in _BY_RULE)


@dataclass(frozen=True)
class _Remote:
    image_id: str
    sha256: str | None
    tags: tuple[str, ...]
    problem: str = ""
    boxes: tuple[_Box, ...] = ()


#: (tag casefolded, left, top, width, height), normalised
_Box = tuple[str, float, float, float, float]
#: How far a box's coordinates may move and still be the same box: a label file written and read back (pixels
#: in COCO, centres in YOLO) differs in its last bits, and the service may keep fewer digits than it was sent.
BOX_TOLERANCE = 1e-4


def _box_key(boxes: Any) -> tuple[_Box, ...]:
    return tuple(sorted((str(b[0]).casefold(), float(b[1]), float(b[2]), float(b[3]), float(b[4])) for b in boxes))


def _local_boxes(labels: Labels | None, with_boxes: bool) -> tuple[_Box, ...] | None:
    if not with_boxes:
        return None
    return _box_key((r.tag, r.left, r.top, r.width, r.height) for r in (labels.regions if labels is not None else ()))


def _same_boxes(local: tuple[_Box, ...], remote: tuple[_Box, ...]) -> bool:
    return len(local) == len(remote) and all(
        a[0] == b[0] and all(abs(x - y) <= BOX_TOLERANCE for x, y in zip(a[1:], b[1:])) for a, b in zip(local, remote)
    )


def _tag_key(tags: Sequence[str]) -> tuple[str, ...]:
    # Tag names are unique regardless of case on the service, and upload maps them that way.
    return tuple(sorted({t.casefold() for t in tags}))


def _noop(phase: str, done: int, total: int | None) -> None:
    return None


async def run_check(
    client: TrainingClient, options: CheckOptions, *, progress: ProgressCallback | None = None
) -> CheckResult:
    """Compare ``options.root`` with the project; every local path and project image gets an entry.

    A wrong key or a missing project is raised (it concerns the whole run); a project image that cannot
    be downloaded, or a local file that cannot be read, is that entry's outcome (``!`` or ``+``).
    """
    from .sources import is_container_location

    report = progress or _noop
    async with AsyncExitStack() as stack:
        if is_container_location(str(options.root)):
            blobs, labels = await _open_container(stack, str(options.root), options.labels)
            project = await resolve_project(client, options.project)
            local = await _hash_container(blobs, labels, options, report)
        else:
            root = Path(options.root)
            if not root.is_dir():
                raise NotADirectoryError(f"ROOT {str(root)!r} is not a folder")
            source = await anyio.to_thread.run_sync(open_label_source, options.labels, root)
            project = await resolve_project(client, options.project)
            local = await _hash_local(root, source, options, report)
    remote = await _hash_project(client, str(project.id), options, report)
    result = CheckResult(str(project.id), str(project.name))
    result.entries = _compare(local, remote)
    return result


def _scan(root: Path, options: CheckOptions) -> list[ScanEntry | ScanProblem]:
    return [
        found for found in scan_tree(root, include_hidden=options.include_hidden)
        if excluded_by(found.relpath, options.exclude) is None
    ]


def _hash_one(found: ScanEntry, labels: Labels | LabelProblem | None, with_boxes: bool = False) -> _Local:
    if isinstance(labels, LabelProblem):
        if labels.kind == "invalid":  # upload never sends an image whose labels are unusable
            return _Local(found.relpath, None, (), f"bad labels: {labels.reason}")
        labels = None  # no label / listed untagged: compared as an image without tags
    tags = labels.tags if labels is not None else ()
    regions = labels.regions if labels is not None else ()
    prepared = prepare_image(found.path, limits=TRAINING_LIMITS, regions=regions)
    if isinstance(prepared, Rejected):
        return _Local(found.relpath, None, tags, f"upload would reject it: {prepared.reason}")
    return _Local(found.relpath, prepared.sha256, tags, boxes=_local_boxes(labels, with_boxes))


async def _hash_local(
    root: Path, source: LabelSource, options: CheckOptions, report: ProgressCallback
) -> list[_Local]:
    phase = "hashing local files"
    report("scanning local files", 0, None)
    found = await anyio.to_thread.run_sync(_scan, root, options)
    out: list[_Local] = [_not_taken(f) for f in found if isinstance(f, ScanProblem)]
    files = [f for f in found if isinstance(f, ScanEntry)]
    with_boxes = bool(getattr(source, "has_regions", False))
    report(phase, 0, len(files))
    limiter = anyio.CapacityLimiter(options.hash_threads)
    done = 0

    async def one(entry: ScanEntry) -> None:
        nonlocal done
        labels = source.labels_for(entry.relpath)
        out.append(await anyio.to_thread.run_sync(_hash_one, entry, labels, with_boxes, limiter=limiter))
        done += 1
        report(phase, done, len(files))

    await _each(files, one, options.hash_threads)
    return out


async def _open_container(stack: AsyncExitStack, root: str, spec: str) -> tuple[Any, LabelSource]:
    """The container's blobs (read as bytes) and the labels upload would take for them; a label file kept in
    a container is copied to a temporary folder that lives as long as ``stack``."""
    from ._blob_labels import label_file_here
    from .sources import open_image_source

    blobs: Any = await stack.enter_async_context(open_image_source(root, via="bytes"))  # a BlobFolder
    spec = await stack.enter_async_context(label_file_here(spec, root_source=blobs))
    labels = await anyio.to_thread.run_sync(blobs.open_labels, spec, Path("."))
    return blobs, labels


def _judge_bytes(
    relpath: str, data: bytes, size: int, labels: Labels | LabelProblem | None, with_boxes: bool = False
) -> _Local:
    if isinstance(labels, LabelProblem):
        if labels.kind == "invalid":
            return _Local(relpath, None, (), f"bad labels: {labels.reason}")
        labels = None
    tags = labels.tags if labels is not None else ()
    regions = labels.regions if labels is not None else ()
    if size > TRAINING_LIMITS.max_file_bytes:  # as upload: judged by its size, never read
        refused = check_head(b"x", size, TRAINING_LIMITS, regions)
        reason = refused.reason if isinstance(refused, Rejected) else "too large"
        return _Local(relpath, None, tags, f"upload would reject it: {reason}")
    prepared = prepare_image(data=data, limits=TRAINING_LIMITS, regions=regions)
    if isinstance(prepared, Rejected):
        return _Local(relpath, None, tags, f"upload would reject it: {prepared.reason}")
    return _Local(relpath, prepared.sha256, tags, boxes=_local_boxes(labels, with_boxes))


async def _hash_container(blobs: Any, labels: LabelSource, options: CheckOptions, report: ProgressCallback) -> list[_Local]:
    from ..storage import StorageError

    phase = "hashing blobs"
    report(phase, 0, None)
    out: list[_Local] = []
    limiter = anyio.CapacityLimiter(options.hash_threads)
    done = 0

    async def one(item: Any) -> None:
        nonlocal done
        found = labels.labels_for(item.relpath)
        data = b""
        if item.size <= TRAINING_LIMITS.max_file_bytes:
            try:
                data = await blobs.storage.read_all(item.entry)
            except StorageError as exc:
                out.append(_Local(item.relpath, None, (), f"cannot read the blob: {one_line(exc)}"))
                done += 1
                return
        judge = partial(_judge_bytes, item.relpath, data, item.size, found, bool(getattr(labels, "has_regions", False)))
        out.append(await anyio.to_thread.run_sync(judge, limiter=limiter))
        done += 1
        report(phase, done, None)

    async def listed() -> Any:
        try:
            async for found in blobs.entries(include_hidden=options.include_hidden):
                if excluded_by(found.relpath, options.exclude) is not None:
                    continue
                if isinstance(found, ScanProblem):
                    out.append(_not_taken(found))
                    continue
                yield found
        except StorageError as exc:  # the listing itself failed (the account stopped answering): the whole run
            raise FatalRunError(str(exc)) from None

    await _each(listed(), one, options.hash_threads)
    return out


async def _each(items: Sequence[Any] | AsyncIterator[Any], work: Callable[[Any], Any], workers: int) -> None:
    """``work(item)`` for every item (a list, or an async iterator read lazily), ``workers`` at a time,
    through a bounded stream. The error that stops it is raised as itself (a wrong key, a dead account)."""
    send, recv = anyio.create_memory_object_stream[Any](workers)

    async def worker(mine: Any) -> None:
        async with mine:
            async for item in mine:
                await work(item)

    try:
        async with anyio.create_task_group() as tg:
            for _ in range(workers):
                tg.start_soon(worker, recv.clone())
            recv.close()
            async with send:
                if isinstance(items, Sequence):
                    for item in items:
                        await send.send(item)
                else:
                    async for item in items:
                        await send.send(item)
    except BaseExceptionGroup as group:
        first = unwrap(group)
        if first is not None:
            raise first from None
        raise


def _image_tags(image: Image) -> tuple[str, ...]:
    names = {str(t.tag_name) for t in (image.tags or ()) if t.tag_name}
    names |= {str(r.tag_name) for r in (image.regions or ()) if r.tag_name}  # a region's tag is the image's
    return tuple(sorted(names))


async def _hash_project(
    client: TrainingClient, project_id: str, options: CheckOptions, report: ProgressCallback
) -> list[_Remote]:
    report("listing project images", 0, None)
    total = await client.get_image_count(project_id)
    tag_names = {t.id: t.name for t in await client.get_tags(project_id)}
    images = [image async for image in client.iter_images(project_id, order_by="Oldest")]
    phase = "downloading project images"
    report(phase, 0, max(total, len(images)))
    out: list[_Remote] = []
    done = 0

    async def one(image: Image) -> None:
        nonlocal done
        out.append(await _hash_remote(client, image, tag_names))
        done += 1
        report(phase, done, len(images))

    await _each(images, one, options.max_concurrency)
    return out


async def _hash_remote(client: TrainingClient, image: Image, tag_names: dict[Any, Any]) -> _Remote:
    tags = _image_tags(image)
    if not tags:  # older API versions give ids only
        ids = [t.tag_id for t in (image.tags or ())] + [r.tag_id for r in (image.regions or ())]
        tags = tuple(sorted({str(tag_names.get(i, i)) for i in ids}))
    image_id = str(image.id)
    boxes = _box_key((r.tag_name or tag_names.get(r.tag_id, r.tag_id), r.left, r.top, r.width, r.height)
                     for r in (image.regions or ()))
    if not image.original_image_uri:
        return _Remote(image_id, None, tags, "the service gave no image URI")
    try:
        data = await client.download(image.original_image_uri)
    except AuthenticationError:
        raise  # the key is wrong for every image: stop
    except CustomVisionError as exc:
        return _Remote(image_id, None, tags, f"download failed: {one_line(exc)}")
    return _Remote(image_id, hashlib.sha256(data).hexdigest(), tags, boxes=boxes)


def _compare(local: list[_Local], remote: list[_Remote]) -> list[CheckEntry]:
    by_hash: dict[str, _Remote] = {}
    for image in remote:
        if image.sha256 is not None:
            by_hash.setdefault(image.sha256, image)
    seen: set[str] = set()
    entries: list[CheckEntry] = []
    for item in local:
        if item.skipped:
            entries.append(CheckEntry(SKIPPED, item.relpath, reason=item.problem))
            continue
        if item.sha256 is None:
            entries.append(CheckEntry(NOT_COMPARED, item.relpath, local_tags=item.tags, reason=item.problem))
            continue
        found = by_hash.get(item.sha256)
        if found is None:
            entries.append(CheckEntry(ONLY_LOCAL, item.relpath, local_tags=item.tags))
            continue
        image = found
        seen.add(image.image_id)
        why = "" if _tag_key(item.tags) == _tag_key(image.tags) else "tags differ"
        if not why and item.boxes is not None and not _same_boxes(item.boxes, image.boxes):
            why = f"regions differ: {len(item.boxes)} local, {len(image.boxes)} in the project, not all the same"
        entries.append(
            CheckEntry(MATCH if not why else TAGS_DIFFER, item.relpath, image.image_id, item.tags, image.tags, why)
        )
    for image in remote:
        if image.image_id not in seen:
            entries.append(
                CheckEntry(ONLY_PROJECT, None, image.image_id, project_tags=image.tags, reason=image.problem)
            )
    entries.sort(key=lambda e: (e.path is None, e.path or "", e.image_id or ""))
    return entries
