"""Migrate's batch and send stages: grouping source images into create requests, sending them to the
target by URL or by download and re-upload, and one outcome per image.

Grouping: at most 64 images and 20 distinct tags per request, and one ``metadata`` map per request (the
spec puts metadata on the batch, not on the image), so images are grouped by their metadata.

Sending a batch:
- *by URL*: CreateImagesFromUrls with the source's ``originalImageUri``; the target fetches the bytes.
  An image the target could not fetch (``ErrorSource``) is re-sent by upload when the mode is ``auto``.
- *by upload*: the original bytes are downloaded from the source (as they are: no re-encoding, so a
  re-sent image is the same content and the target answers ``OKDuplicate``) and sent with
  CreateImagesFromFiles, in requests kept under a byte budget.

Outcomes follow upload's rules: ``OK`` -> uploaded; ``OKDuplicate`` -> uploaded when our own earlier
attempt put it there (the journal said ``sending``), else duplicate; a duplicate gets the tags and regions
it lacks; a request refused as a whole is split in halves down to single images; transient trouble the
client already retried -> error (retried on resume); a bad key or a vanished project -> fatal.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import anyio

from ..client import (
    AuthenticationError,
    BadRequestError,
    CustomVisionError,
    ImageFileCreateEntry,
    ImageUrlCreateEntry,
    NotFoundError,
    Region,
)
from ._export_layout import sniff_extension
from ._reasons import one_line
from ._transfer_common import FatalBatchError
from ._upload_send import STATUS_REASONS, add_labels
from .batch import MAX_IMAGES_PER_BATCH, MAX_TAGS_PER_BATCH, TaggedRegion
from .journal import DUPLICATE, ERROR, FAILED, SENDING, UPLOADED

if TYPE_CHECKING:
    from ..client import ImageCreateResult, TrainingClient

__all__ = ["MigrateItem", "MigrateBatch", "Grouper", "Outcome", "MigrateSender", "FatalMigrateError", "BY_MODES"]

BY_MODES = ("auto", "url", "upload")
_DOWNLOADS_PER_BATCH = 16  # downloads in flight per batch (the source's Pacer paces them all)
_SPLIT_CODES = frozenset({"BadRequestExceededBatchSize", "BadRequestImageBatch", "BadRequestImageExceededCount"})
_INDEX = re.compile(r"^(\d+)-")


@dataclass(frozen=True, slots=True)
class MigrateItem:
    """One source image on its way to the target, its labels already mapped to the target's tag ids."""

    source_id: str
    url: str | None
    tag_ids: tuple[str, ...]  # tags besides the regions' own
    regions: tuple[TaggedRegion, ...]
    metadata: tuple[tuple[str, str], ...] = ()
    prior_status: str | None = None
    attempts: int = 0

    @property
    def all_tags(self) -> set[str]:
        return set(self.tag_ids) | {r.tag_id for r in self.regions}


@dataclass(frozen=True, slots=True)
class MigrateBatch:
    items: tuple[MigrateItem, ...]
    metadata: tuple[tuple[str, str], ...] = ()

    def __len__(self) -> int:
        return len(self.items)

    def split(self) -> tuple[MigrateBatch, MigrateBatch]:
        middle = len(self.items) // 2
        return MigrateBatch(self.items[:middle], self.metadata), MigrateBatch(self.items[middle:], self.metadata)


@dataclass
class _Open:
    items: list[MigrateItem] = field(default_factory=list)
    tags: set[str] = field(default_factory=set)


class Grouper:
    """Pure grouping: one open batch per metadata map, flushed at 64 images or 20 distinct tags."""

    def __init__(self, max_images: int = MAX_IMAGES_PER_BATCH, max_open: int = 8) -> None:
        self.max_images = max_images
        self.max_open = max_open
        self._open: dict[tuple[tuple[str, str], ...], _Open] = {}

    def add(self, item: MigrateItem) -> list[MigrateBatch]:
        out: list[MigrateBatch] = []
        key = item.metadata
        group = self._open.get(key)
        tags = item.all_tags
        if group is not None and (
            len(group.items) >= self.max_images or len(group.tags | tags) > MAX_TAGS_PER_BATCH
        ):
            out.append(self._emit(key))
            group = None
        if group is None:
            if len(self._open) >= self.max_open:
                # Many distinct metadata maps: send the fullest open batch rather than hold them all.
                fullest = max(self._open, key=lambda k: len(self._open[k].items))
                out.append(self._emit(fullest))
            group = self._open[key] = _Open()
        group.items.append(item)
        group.tags |= tags
        if len(group.items) >= self.max_images:
            out.append(self._emit(key))
        return out

    def flush(self) -> list[MigrateBatch]:
        return [self._emit(k) for k in list(self._open)]

    def _emit(self, key: tuple[tuple[str, str], ...]) -> MigrateBatch:
        group = self._open.pop(key)
        return MigrateBatch(tuple(group.items), key)


@dataclass(frozen=True, slots=True)
class Outcome:
    item: MigrateItem
    status: str
    image_id: str | None = None  # the target's image id
    reason: str | None = None
    by: str | None = None  # "url" | "upload"
    nbytes: int = 0


class FatalMigrateError(FatalBatchError):
    """The run cannot go on (bad key, a project gone); ``outcomes`` (migrate Outcomes) are the batch's."""


def _region_key(tag_id: Any, left: Any, top: Any, width: Any, height: Any) -> tuple:
    # The service may round coordinates: compare at a precision no real box depends on.
    return (str(tag_id).lower(), *(round(float(v or 0.0), 4) for v in (left, top, width, height)))


class MigrateSender:
    """Sends migrate batches to the target project; one instance shared by every sender task."""

    def __init__(
        self, source: TrainingClient, target: TrainingClient, target_project_id: str, *, by: str = "auto",
        batch_bytes: int = 32 * 1024 * 1024,
    ) -> None:
        if by not in BY_MODES:
            raise ValueError(f"by must be one of {BY_MODES}")
        self.source = source
        self.target = target
        self.project_id = target_project_id
        self.by = by
        self.batch_bytes = batch_bytes
        # auto: the first batch goes by URL alone; what it shows decides for the rest
        self.mode: str | None = None if by == "auto" else by
        self._decide = anyio.Lock()
        self.splits = 0
        self.fallbacks = 0  # images re-sent by upload after the target could not fetch their URL
        self.bytes_downloaded = 0

    async def send(self, batch: MigrateBatch) -> list[Outcome]:
        """One outcome per image of ``batch`` (in no particular order). Raises FatalMigrateError."""
        if self.mode is None:
            async with self._decide:
                if self.mode is None:
                    outcomes = await self._by_url(batch)
                    fetched = any(o.status != FAILED or not (o.reason or "").startswith("ErrorSource")
                                  for o in outcomes)
                    # Not one image fetched: the target cannot reach the source's URLs.
                    self.mode = "url" if fetched else "upload"
                    return await self._fallback(batch, outcomes)
        if self.mode == "url":
            outcomes = await self._by_url(batch)
            return await self._fallback(batch, outcomes) if self.by == "auto" else outcomes
        return await self._by_upload(batch)

    async def _fallback(self, batch: MigrateBatch, outcomes: list[Outcome]) -> list[Outcome]:
        """Re-send by upload the images whose URL the target could not fetch."""
        unreachable = {o.item.source_id for o in outcomes if o.status == FAILED and (o.reason or "").startswith("ErrorSource")}
        if not unreachable:
            return outcomes
        self.fallbacks += len(unreachable)
        kept = [o for o in outcomes if o.item.source_id not in unreachable]
        again = MigrateBatch(tuple(i for i in batch.items if i.source_id in unreachable), batch.metadata)
        return kept + await self._by_upload(again)

    # -- by URL ----------------------------------------------------------------------------------------

    async def _by_url(self, batch: MigrateBatch) -> list[Outcome]:
        no_url = [Outcome(i, FAILED, reason="ErrorSource: the source gave no image URI", by="url")
                  for i in batch.items if not i.url]
        items = tuple(i for i in batch.items if i.url)
        if not items:
            return no_url
        entries = [
            ImageUrlCreateEntry(
                url=i.url or "",
                tag_ids=tuple(i.tag_ids[:MAX_TAGS_PER_BATCH]),
                regions=tuple(Region(r.tag_id, r.left, r.top, r.width, r.height) for r in i.regions),
            )
            for i in items
        ]

        async def create(sub: Sequence[int]) -> Any:
            return await self.target.create_images_from_urls(
                self.project_id, [entries[k] for k in sub], metadata=dict(batch.metadata) or None
            )

        by_url = {item.url: k for k, item in enumerate(items)}

        def index_of(result: ImageCreateResult, sub: Sequence[int]) -> int | None:
            k = by_url.get((result.source_url or "").strip().strip('"'))
            return k if k in sub else None

        return no_url + await self._send_split(items, list(range(len(items))), create, index_of, "url", {})

    # -- by download and upload ------------------------------------------------------------------------

    async def _by_upload(self, batch: MigrateBatch) -> list[Outcome]:
        """Download and send in steps: at most a request's byte budget plus one round of downloads is
        held in memory per sender, however large the images."""
        items = batch.items
        data: dict[int, bytes] = {}
        sizes: dict[int, int] = {}
        outcomes: list[Outcome] = []

        async def create(sub: Sequence[int]) -> Any:
            entries = [
                ImageFileCreateEntry(
                    name=f"{n:02d}-{items[k].source_id}{sniff_extension(data[k])}",
                    contents=data[k],
                    tag_ids=tuple(items[k].tag_ids[:MAX_TAGS_PER_BATCH]),
                    regions=tuple(Region(r.tag_id, r.left, r.top, r.width, r.height) for r in items[k].regions),
                )
                for n, k in enumerate(sub)
            ]
            return await self.target.create_images_from_files(
                self.project_id, entries, metadata=dict(batch.metadata) or None
            )

        def index_of(result: ImageCreateResult, sub: Sequence[int]) -> int | None:
            name = (result.source_url or "").strip().strip('"').rsplit("/", 1)[-1]
            m = _INDEX.match(name)
            n = int(m.group(1)) if m else -1
            return sub[n] if 0 <= n < len(sub) else None

        async def flush(pending: list[int]) -> None:
            outcomes.extend(await self._send_split(items, pending, create, index_of, "upload", sizes))
            for k in pending:
                del data[k]  # sent: let the bytes go

        pending: list[int] = []
        budget = 0
        for start in range(0, len(items), _DOWNLOADS_PER_BATCH):
            indices = range(start, min(start + _DOWNLOADS_PER_BATCH, len(items)))
            outcomes += await self._download(items, indices, data)
            for k in indices:
                if k not in data:
                    continue
                sizes[k] = len(data[k])
                wire = 4 * ((sizes[k] + 2) // 3)  # base64 grows the bytes by a third
                if pending and budget + wire > self.batch_bytes:
                    await flush(pending)
                    pending, budget = [], 0
                pending.append(k)
                budget += wire
        if pending:
            await flush(pending)
        return outcomes

    async def _download(self, items: Sequence[MigrateItem], indices: Iterable[int], data: dict[int, bytes]) -> list[Outcome]:
        """Fetch the original bytes of ``items[k]`` for each k concurrently into ``data``; the failures."""
        failed: list[Outcome] = []
        fatal: list[CustomVisionError] = []

        async def fetch(k: int) -> None:
            item = items[k]
            if not item.url:
                failed.append(Outcome(item, FAILED, reason="the source gave no image URI", by="upload"))
                return
            try:
                data[k] = await self.source.download(item.url)
            except AuthenticationError as exc:
                fatal.append(exc)  # raised below, once, outside the task group
            except NotFoundError as exc:
                failed.append(Outcome(item, FAILED, reason=f"gone from the source: {one_line(exc)}", by="upload"))
            except CustomVisionError as exc:
                failed.append(Outcome(item, ERROR, reason=f"download: {one_line(exc)}", by="upload"))
            else:
                self.bytes_downloaded += len(data[k])

        async with anyio.create_task_group() as tg:
            for k in indices:
                tg.start_soon(fetch, k)
        if fatal:
            # No outcome recorded: part of the batch may be on the target already; left `sending`, a
            # resume re-sends it and counts the target's OKDuplicate as ours.
            raise FatalMigrateError(fatal[0], [])
        return failed

    # -- shared ----------------------------------------------------------------------------------------

    async def _send_split(
        self, items: Sequence[MigrateItem], sub: list[int], create: Any, index_of: Any, by: str,
        sizes: dict[int, int],
    ) -> list[Outcome]:
        try:
            summary = await create(sub)
        except BadRequestError as exc:
            if len(sub) > 1:
                # Too large, or one bad image: halves isolate it; the good ones still go.
                if exc.code in _SPLIT_CODES or exc.status == 413:
                    self.splits += 1
                middle = len(sub) // 2
                left = await self._send_split(items, sub[:middle], create, index_of, by, sizes)
                return left + await self._send_split(items, sub[middle:], create, index_of, by, sizes)
            return [Outcome(items[sub[0]], FAILED, reason=one_line(exc), by=by)]
        except (AuthenticationError, NotFoundError) as exc:
            raise FatalMigrateError(exc, [Outcome(items[k], ERROR, reason=one_line(exc), by=by) for k in sub]) from exc
        except CustomVisionError as exc:
            return [Outcome(items[k], ERROR, reason=one_line(exc), by=by) for k in sub]
        results = list(summary.images)
        matched: dict[int, ImageCreateResult] = {}
        for r in results:
            k = index_of(r, sub)
            if k is not None and k not in matched:
                matched[k] = r
        if len(matched) < len(sub) and len(results) == len(sub):
            matched = dict(zip(sub, results))  # names not echoed back: the answer is in request order
        answered: list[tuple[Outcome, ImageCreateResult | None]] = []
        for k in sub:
            item, r = items[k], matched.get(k)
            if r is None:
                answered.append((Outcome(item, ERROR, reason="the service's answer did not mention this image", by=by), None))
                continue
            image_id = r.image.id if r.image is not None else None
            status = r.status or "ErrorUnknown"
            if status == "OK":
                answered.append((Outcome(item, UPLOADED, image_id, by=by, nbytes=sizes.get(k, 0)), r))
            elif status == "OKDuplicate":
                mine = item.prior_status == SENDING
                answered.append((Outcome(
                    item, UPLOADED if mine else DUPLICATE, image_id,
                    None if mine else "the same image is already in the target project", by=by,
                    nbytes=sizes.get(k, 0),
                ), r))
            else:
                hint = STATUS_REASONS.get(status)
                answered.append((Outcome(item, FAILED, image_id, f"{status}: {hint}" if hint else status, by=by), r))
        return await self._complete_labels(answered)

    async def _complete_labels(self, answered: list[tuple[Outcome, ImageCreateResult | None]]) -> list[Outcome]:
        """Add the tags and regions a created image lacks (a duplicate keeps the labels it had, and a
        request carries at most 20 tags per image)."""
        tag_pairs: list[tuple[str, str]] = []
        regions: list[tuple[str, TaggedRegion]] = []
        for o, r in answered:
            if o.status not in (UPLOADED, DUPLICATE) or not o.image_id or r is None:
                continue
            item = o.item
            image = r.image
            if r.status == "OKDuplicate" or image is None:
                have = {str(t.tag_id).lower() for t in ((image.tags if image else None) or ())}
                have_regions = {
                    _region_key(g.tag_id, g.left, g.top, g.width, g.height)
                    for g in ((image.regions if image else None) or ())
                }
                regions += [(o.image_id, g) for g in item.regions if _region_key(*g) not in have_regions]
                have |= {g.tag_id.lower() for g in item.regions}
            else:
                have = {t.lower() for t in item.tag_ids[:MAX_TAGS_PER_BATCH]} | {g.tag_id.lower() for g in item.regions}
            tag_pairs += [(o.image_id, t) for t in dict.fromkeys(item.tag_ids) if t.lower() not in have]
        outcomes = [o for o, _ in answered]
        if not tag_pairs and not regions:
            return outcomes
        problems = await add_labels(self.target, self.project_id, tag_pairs, regions)
        return [
            Outcome(o.item, ERROR, o.image_id, problems[o.image_id], o.by, o.nbytes)
            if o.image_id in problems and o.status in (UPLOADED, DUPLICATE) else o
            for o in outcomes
        ]
