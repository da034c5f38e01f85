"""Migrate's batch and send stages: grouping source images into create requests, sending them to the
target by URL or by download and re-upload, and one outcome per image.

Grouping: at most 64 images and 20 distinct tags per request, and one ``metadata`` map per request (the
spec puts metadata on the batch, not on the image), so images are grouped by their metadata.

Sending a batch goes through upload's sender (``send.ImageSender``: its split rules, 207 mapping,
OKDuplicate ownership and label completion), in one of two ways:
- *by URL*: CreateImagesFromUrls with the source's ``originalImageUri``; the target fetches the bytes.
  An image the target could not fetch (``ErrorSource``) is re-sent by upload when the mode is ``auto``.
- *by upload*: the original bytes are downloaded from the source (as they are: no re-encoding, so a
  re-sent image is the same content and the target answers ``OKDuplicate``) and sent with
  CreateImagesFromFiles, in requests kept under a byte budget.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

import anyio

from ..client import AuthenticationError, CustomVisionError
from ..client._body import BytesBody
from ._export_layout import sniff_extension
from ._image_links import ImageLinks, LinkProblem, download_image
from ._reasons import one_line
from .batch import MAX_IMAGES_PER_BATCH, MAX_TAGS_PER_BATCH, Batch, BatchItem, TaggedRegion
from .engine import FatalBatchError
from .send import FatalSendError, ImageSender, SendOutcome
from .status import Outcome, Status

if TYPE_CHECKING:
    from ..client import TrainingClient

__all__ = ["MigrateItem", "MigrateBatch", "Grouper", "MigrateOutcome", "MigrateSender", "FatalMigrateError", "BY_MODES"]

BY_MODES = ("auto", "url", "upload")
_DOWNLOADS_PER_BATCH = 16  # downloads in flight per batch (bounded too by the source client's connection pool)

By = Literal["url", "upload"]


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


#: A migrated image's outcome; ``detail`` says how it went: "url" or "upload".
MigrateOutcome = Outcome[MigrateItem]


class FatalMigrateError(FatalBatchError):
    """The run cannot go on (bad key, a project gone); ``outcomes`` (MigrateOutcomes) are the batch's."""


def _unreachable(o: MigrateOutcome) -> bool:
    return o.status == Status.FAILED and (o.reason or "").startswith("ErrorSource")


class MigrateSender:
    """Sends migrate batches to the target project; one instance shared by every sender task."""

    def __init__(
        self, source: TrainingClient, target: TrainingClient, target_project_id: str, *, by: str = "auto",
        batch_bytes: int = 32 * 1024 * 1024, source_project_id: str,
    ) -> None:
        if by not in BY_MODES:
            raise ValueError(f"by must be one of {BY_MODES}")
        self.source = source
        self.links = ImageLinks(source, source_project_id)  # an expired source link is renewed, not fatal
        # Ours is what a killed run left `sending`; not the creation time (the target is someone's project).
        self.images = ImageSender(target, target_project_id, by_time=False)
        self.by = by
        self.batch_bytes = batch_bytes
        # auto: the first batch goes by URL alone; what it shows decides for the rest
        self.mode: str | None = None if by == "auto" else by
        self._decide = anyio.Lock()
        self.fallbacks = 0  # images re-sent by upload after the target could not fetch their URL
        self.bytes_downloaded = 0
        self.target = target
        self.target_project_id = target_project_id
        self.metadata_updated = 0  # images already in the target (OKDuplicate) given the source's metadata
        self.metadata_not_updated: list[str] = []  # "<source id>: <reason>", for the report

    @property
    def splits(self) -> int:
        return self.images.splits

    async def send(self, batch: MigrateBatch) -> list[MigrateOutcome]:
        """One outcome per image of ``batch`` (in no particular order). Raises FatalMigrateError."""
        if self.mode is None:
            async with self._decide:
                if self.mode is None:
                    outcomes = await self._by_url(batch)
                    # Not one image fetched: the target cannot reach the source's URLs.
                    self.mode = "url" if any(not _unreachable(o) for o in outcomes) else "upload"
                    return await self._fallback(batch, outcomes)
        if self.mode == "url":
            outcomes = await self._by_url(batch)
            return await self._fallback(batch, outcomes) if self.by == "auto" else outcomes
        return await self._by_upload(batch)

    async def _fallback(self, batch: MigrateBatch, outcomes: list[MigrateOutcome]) -> list[MigrateOutcome]:
        """Re-send by upload the images whose URL the target could not fetch."""
        unreachable = {o.item.source_id for o in outcomes if _unreachable(o)}
        if not unreachable:
            return outcomes
        self.fallbacks += len(unreachable)
        kept = [o for o in outcomes if o.item.source_id not in unreachable]
        again = MigrateBatch(tuple(i for i in batch.items if i.source_id in unreachable), batch.metadata)
        return kept + await self._by_upload(again)

    async def _send(self, batch: Batch, by: By) -> list[MigrateOutcome]:
        prior = {it.key: it.context.prior_status for it in batch.items}
        try:
            sent = await self.images.send(batch, prior=prior)
        except FatalSendError as exc:
            raise FatalMigrateError(exc.error, [_mine(o, by) for o in exc.outcomes]) from exc.error
        if batch.metadata:
            await self._update_metadata([o for o in sent if o.status == Status.DUPLICATE and o.image_id],
                                        dict(batch.metadata))
        return [_mine(o, by) for o in sent]

    async def _update_metadata(self, duplicates: list[SendOutcome], metadata: dict[str, str]) -> None:
        """An image that was in the target already keeps its own metadata on create: set the source's
        (UpdateImageMetadata, 64 per call). A refusal is noted, not fatal: the image itself is there."""
        for start in range(0, len(duplicates), MAX_IMAGES_PER_BATCH):
            chunk = duplicates[start : start + MAX_IMAGES_PER_BATCH]
            by_id = {str(o.image_id): o.item.key for o in chunk}
            try:
                summary = await self.target.update_image_metadata(self.target_project_id, list(by_id), metadata)
            except AuthenticationError:
                raise
            except CustomVisionError as exc:
                self.metadata_not_updated += [f"{k}: {one_line(exc)}" for k in by_id.values()]
                continue
            for entry in summary.images:
                status = str(entry.status)
                if status == "OK":
                    self.metadata_updated += 1
                else:
                    key = by_id.get(entry.image_id, "?")
                    self.metadata_not_updated.append(f"{key}: {status}")

    # -- by URL ----------------------------------------------------------------------------------------

    async def _by_url(self, batch: MigrateBatch) -> list[MigrateOutcome]:
        no_url = [Outcome(i, Status.FAILED, reason="ErrorSource: the source gave no image URI", detail="url")
                  for i in batch.items if not i.url]
        items = tuple(_batch_item(i, None) for i in batch.items if i.url)
        if not items:
            return no_url
        return no_url + await self._send(Batch("urls", items, (), batch.metadata), "url")

    # -- by download and upload ------------------------------------------------------------------------

    async def _by_upload(self, batch: MigrateBatch) -> list[MigrateOutcome]:
        """Download and send in steps: at most a request's byte budget plus one round of downloads is
        held in memory per sender, however large the images."""
        items = batch.items
        data: dict[int, bytes] = {}
        outcomes: list[MigrateOutcome] = []

        async def flush(pending: list[int]) -> None:
            request = tuple(_batch_item(items[k], data.pop(k)) for k in pending)  # the bytes leave with it
            outcomes.extend(await self._send(Batch("files", request, (), batch.metadata), "upload"))

        pending: list[int] = []
        budget = 0
        for start in range(0, len(items), _DOWNLOADS_PER_BATCH):
            indices = range(start, min(start + _DOWNLOADS_PER_BATCH, len(items)))
            outcomes += await self._download(items, indices, data)
            for k in indices:
                if k not in data:
                    continue
                wire = 4 * ((len(data[k]) + 2) // 3)  # base64 grows the bytes by a third
                if pending and budget + wire > self.batch_bytes:
                    await flush(pending)
                    pending, budget = [], 0
                pending.append(k)
                budget += wire
        if pending:
            await flush(pending)
        return outcomes

    async def _download(
        self, items: Sequence[MigrateItem], indices: Iterable[int], data: dict[int, bytes]
    ) -> list[MigrateOutcome]:
        """Fetch the original bytes of ``items[k]`` for each k concurrently into ``data``; the failures."""
        failed: list[MigrateOutcome] = []
        fatal: list[CustomVisionError] = []

        async def fetch(k: int) -> None:
            item = items[k]
            if not item.url:
                failed.append(Outcome(item, Status.FAILED, reason="the source gave no image URI", detail="upload"))
                return
            try:
                got = await download_image(self.source, self.links, item.source_id, item.url)
            except AuthenticationError as exc:  # GetImagesByIds refused as well: the source key
                fatal.append(exc)  # raised below, once, outside the task group
                return
            if isinstance(got, LinkProblem):
                status = Status.ERROR if got.kind == "unavailable" else Status.FAILED
                reason = "gone from the source: deleted meanwhile" if got.kind == "gone" else got.reason
                failed.append(Outcome(item, status, reason=reason, detail="upload"))
                return
            data[k] = got[1]
            self.bytes_downloaded += len(got[1])

        async with anyio.create_task_group() as tg:
            for k in indices:
                tg.start_soon(fetch, k)
        if fatal:
            # No outcome recorded: part of the batch may be on the target already; left `sending`, a
            # resume re-sends it and counts the target's OKDuplicate as ours.
            raise FatalMigrateError(fatal[0], [])
        return failed


def _batch_item(item: MigrateItem, data: bytes | None) -> BatchItem:
    name = f"{item.source_id}{sniff_extension(data)}" if data is not None else item.source_id
    return BatchItem(
        key=item.source_id,
        name=name,
        body=BytesBody(data, name) if data is not None else None,
        tag_ids=tuple(item.tag_ids),
        regions=item.regions,
        context=item,
        url=item.url,
    )


def _mine(o: SendOutcome, by: By) -> MigrateOutcome:
    return Outcome(o.item.context, o.status, o.image_id, o.reason, o.nbytes if by == "upload" else 0, by)
