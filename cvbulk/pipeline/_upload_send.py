"""Sending one batch and turning the service's answer into one outcome per image (upload's send stage).

The rules (issue 5): ``OK`` -> uploaded; ``OKDuplicate`` -> duplicate, or uploaded when our own earlier
attempt (a killed or cancelled run left the file ``sending``) is what put it there; a duplicate whose
tags or regions differ from what we asked gets the missing ones added; any other per-image status ->
failed with that status as the reason. A batch refused as a whole: too large (400 batch-size codes,
413) or otherwise a bad request -> split in halves and resent, down to single images, so one bad image
never takes 63 good ones with it; transient trouble the client already retried -> error (retried on
resume); authentication or a vanished project -> fatal, raised after the batch is recorded.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Sequence
from datetime import datetime
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..client._errors import (
    AuthenticationError,
    BadRequestError,
    CustomVisionError,
    NotFoundError,
)
from ._reasons import one_line
from ._transfer_common import FatalBatchError
from .batch import MAX_TAGS_PER_BATCH, Batch, BatchItem, TaggedRegion
from .journal import DUPLICATE, ERROR, FAILED, SENDING, UPLOADED

if TYPE_CHECKING:
    from ..client import ImageCreateResult, TrainingClient

__all__ = ["Outcome", "BatchSender", "FatalSendError", "STATUS_REASONS", "add_labels"]

# Batch codes that mean "too big a request": the halves will go through.
_SPLIT_CODES = frozenset(
    {"BadRequestExceededBatchSize", "BadRequestImageBatch", "BadRequestImageExceededCount"}
)
# Codes that one image of the request can cause: halving the request finds it.
_IMAGE_CODES = frozenset(
    {
        "BadRequest",
        "BadRequestImageFormat",
        "BadRequestImageSizeBytes",
        "BadRequestImageDimensions",
        "BadRequestImageStream",
        "BadRequestImageRegions",
        "BadRequestImageTags",
        "BadRequestExceedTagPerImageLimit",
        "BadRequestNegativeAndRegularTagOnSameImage",
        "BadRequestImageMetadataKey",
        "BadRequestImageMetadataValue",
        "UnsupportedMediaType",
    }
)
_CLOCK_SKEW = 5.0  # seconds of disagreement allowed between our clock and the service's
_RECENT = 20_000  # image ids of recent uploads kept to tell twins from our own retries
_TAGS_PER_CALL = 128  # CreateImageTags: "Limited to 128 tags per batch."
_REGIONS_PER_CALL = 64  # CreateImageRegions: "a limit of 64 entries in the batch."

# One line per per-image status of a 207, for the report (the status itself stays in front).
STATUS_REASONS = {
    "ErrorSource": "the service could not read the image",
    "ErrorImageFormat": "the service refused the image format",
    "ErrorImageSize": "the service refused the image size",
    "ErrorStorage": "the service could not store the image",
    "ErrorLimitExceed": "the project holds as many images as its tier allows",
    "ErrorTagLimitExceed": "too many tags on the image",
    "ErrorRegionLimitExceed": "too many regions on the image",
    "ErrorUnknown": "the service gave no reason",
    "ErrorNegativeAndRegularTagOnSameImage": "a negative and a regular tag on the same image",
}


@dataclass(frozen=True, slots=True)
class Outcome:
    """What happened to one image of a batch."""

    item: BatchItem
    status: str
    image_id: str | None = None
    reason: str | None = None


class FatalSendError(FatalBatchError):
    """The run cannot go on (bad key, project gone); ``outcomes`` (upload Outcomes) are the batch's."""


def _wire_name(index: int, item: BatchItem) -> str:
    # Unique within the request, so each answer finds its image even when two folders hold "1.jpg".
    return f"{index:02d}-{item.name}"


_INDEX = re.compile(r"^(\d+)-")


def _index_of(result: ImageCreateResult) -> int | None:
    url = (getattr(result, "source_url", None) or "").strip().strip('"').strip()
    url = url.rsplit("/", 1)[-1]
    m = _INDEX.match(url)
    return int(m.group(1)) if m else None


def _region_key(tag_id: str | None, left: Any, top: Any, width: Any, height: Any) -> tuple:
    # The service may round coordinates: compare at a precision no real box depends on.
    return (tag_id, *(round(float(v or 0.0), 3) for v in (left, top, width, height)))


class BatchSender:
    """Sends batches for one project; one instance is shared by every sender task."""

    def __init__(
        self, client: TrainingClient, project_id: str, *, started: float | None = None
    ) -> None:
        self.client = client
        self.project_id = project_id
        self.splits = 0  # requests split because the service refused their size
        # When this run began (epoch s), less a margin for the service's clock.
        self._since = (started if started is not None else time.time()) - _CLOCK_SKEW
        # image id -> key of the files this run uploaded lately (bounded: memory stays flat)
        self._recent: OrderedDict[str, str] = OrderedDict()

    async def send(self, batch: Batch, *, prior: dict[str, str | None] | None = None) -> list[Outcome]:
        """Send ``batch``; one outcome per item, in the batch's order.

        ``prior`` maps a key to the status the journal had before this run (``sending`` turns an
        ``OKDuplicate`` into ``uploaded``). Raises :class:`FatalSendError` for a fatal error.
        """
        prior = prior or {}
        try:
            summary = await self._create(batch)
        except BadRequestError as exc:
            too_big = exc.code in _SPLIT_CODES or exc.status == 413
            if too_big or exc.code in _IMAGE_CODES or exc.code is None:
                if len(batch) > 1:
                    # Too large, or one bad image: halves isolate it; the good ones still go.
                    self.splits += too_big
                    left, right = batch.split()
                    return await self.send(left, prior=prior) + await self.send(right, prior=prior)
                return [Outcome(batch.items[0], FAILED, reason=one_line(exc))]
            # About the request, not its images (an unknown tag id, ...): halving would only
            # repeat it 127 times. Kept as error with the service's words, retried on resume.
            return [Outcome(i, ERROR, reason=one_line(exc)) for i in batch.items]
        except (AuthenticationError, NotFoundError) as exc:
            outcomes = [Outcome(i, ERROR, reason=one_line(exc)) for i in batch.items]
            raise FatalSendError(exc, outcomes) from exc
        except CustomVisionError as exc:
            # Retryable trouble the client has already retried as far as its budget allowed.
            return [Outcome(i, ERROR, reason=one_line(exc)) for i in batch.items]
        answered = self._outcomes(batch, summary.images, prior)
        return await self._complete_labels(answered)

    async def _create(self, batch: Batch) -> Any:
        if batch.kind == "data":
            return await self.client.create_images_from_data(
                self.project_id,
                [(_wire_name(i, it), it.data) for i, it in enumerate(batch.items)],
                tag_ids=batch.tag_ids,
            )
        from ..client import ImageFileCreateEntry, Region

        entries = [
            ImageFileCreateEntry(
                name=_wire_name(i, it),
                contents=it.data,
                tag_ids=tuple(it.tag_ids[:MAX_TAGS_PER_BATCH]),
                regions=tuple(Region(r.tag_id, r.left, r.top, r.width, r.height) for r in it.regions),
            )
            for i, it in enumerate(batch.items)
        ]
        return await self.client.create_images_from_files(self.project_id, entries)

    def _outcomes(
        self, batch: Batch, results: Sequence[ImageCreateResult], prior: dict[str, str | None]
    ) -> list[tuple[Outcome, ImageCreateResult | None]]:
        by_index: dict[int, ImageCreateResult] = {}
        unmatched: list[ImageCreateResult] = []
        for r in results:
            idx = _index_of(r)
            if idx is not None and 0 <= idx < len(batch) and idx not in by_index:
                by_index[idx] = r
            else:
                unmatched.append(r)
        if unmatched and len(results) == len(batch):
            # Names not echoed back: the answer lists the images in request order.
            by_index = dict(enumerate(results))
        out: list[tuple[Outcome, ImageCreateResult | None]] = []
        for i, item in enumerate(batch.items):
            r = by_index.get(i)
            if r is None:
                out.append((Outcome(item, ERROR, reason="the service's answer did not mention this image"), None))
                continue
            image_id = r.image.id if r.image is not None else None
            status = r.status or "ErrorUnknown"
            if status == "OK":
                self._remember(image_id, item.key)
                out.append((Outcome(item, UPLOADED, image_id), r))
            elif status == "OKDuplicate":
                mine = self._ours(item.key, r.image, prior.get(item.key))
                status_ = UPLOADED if mine else DUPLICATE
                reason = None if mine else "the same image is already in the project"
                out.append((Outcome(item, status_, image_id, reason), r))
            else:
                hint = STATUS_REASONS.get(status)
                out.append((Outcome(item, FAILED, image_id, f"{status}: {hint}" if hint else status), r))
        return out

    def _ours(self, key: str, image: Any, prior_status: str | None) -> bool:
        """Did our own earlier attempt put this ``OKDuplicate`` image there?

        Yes when a killed run left the file ``sending``, or when the image was created during this
        run and not for another file of it: the client retried a request whose first attempt had
        gone through (a dropped answer). Otherwise the content was already in the project, or
        another file with the same bytes brought it: a duplicate.
        """
        if prior_status == SENDING:
            self._remember(getattr(image, "id", None), key)
            return True
        image_id = getattr(image, "id", None)
        if image_id is None:
            return False
        other = self._recent.get(image_id)
        if other is not None:
            return other == key
        created = _epoch(getattr(image, "created", None))
        if created is not None and created >= self._since:
            self._remember(image_id, key)
            return True
        return False

    def _remember(self, image_id: str | None, key: str) -> None:
        if not image_id:
            return
        self._recent[image_id] = key
        self._recent.move_to_end(image_id)
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    async def _complete_labels(
        self, answered: list[tuple[Outcome, ImageCreateResult | None]]
    ) -> list[Outcome]:
        """Add the tags and regions an image lacks: a duplicate keeps the labels it was first given,
        and a request carries at most 20 tags per image."""
        tag_pairs: list[tuple[str, str]] = []
        regions: list[tuple[str, TaggedRegion]] = []
        for o, r in answered:
            if o.status not in (UPLOADED, DUPLICATE) or not o.image_id or r is None:
                continue
            wanted = list(dict.fromkeys(o.item.tag_ids))
            region_tags = {g.tag_id for g in o.item.regions}
            if r.status == "OKDuplicate":
                image = r.image
                have = {t.tag_id for t in (image.tags or ())} if image is not None else set()
                have_regions = {
                    _region_key(g.tag_id, g.left, g.top, g.width, g.height)
                    for g in ((image.regions if image is not None else None) or ())
                }
                regions += [(o.image_id, g) for g in o.item.regions if _region_key(*g) not in have_regions]
                have |= region_tags  # a region's tag becomes the image's tag with the region
            else:
                # A fresh image holds what the request carried: only tags past 20 can be missing.
                have = set(wanted[:MAX_TAGS_PER_BATCH]) | region_tags
            tag_pairs += [(o.image_id, t) for t in wanted if t not in have]
        outcomes = [o for o, _ in answered]
        if not tag_pairs and not regions:
            return outcomes
        problems = await add_labels(self.client, self.project_id, tag_pairs, regions)
        return [
            Outcome(o.item, ERROR, o.image_id, problems[o.image_id])
            if o.image_id in problems and o.status in (UPLOADED, DUPLICATE)
            else o
            for o in outcomes
        ]


async def add_labels(
    client: Any, project_id: str, tag_pairs: list[tuple[str, str]], regions: list[tuple[str, TaggedRegion]]
) -> dict[str, str]:
    """Add tags ``(image id, tag id)`` and regions to created images, in calls of the service's limits;
    image id -> reason for those that could not be added. A wrong key or a project gone stops the run."""
    from ..client import ImageRegionCreateEntry

    problems: dict[str, str] = {}

    async def add(what: str, pairs: list[Any], size: int, create: Callable[[list[Any]], Awaitable[Any]]) -> None:
        for chunk in _chunks(pairs, size):
            try:
                summary = await create(chunk)
            except (AuthenticationError, NotFoundError):
                raise
            except CustomVisionError as exc:
                problems.update({image_id: f"{what} not added: {one_line(exc)}" for image_id, _ in chunk})
                continue
            for e in getattr(summary, "exceeded", ()) or ():
                problems[str(e.image_id)] = f"{what} not added: over the {what}-per-image limit"

    await add("tags", tag_pairs, _TAGS_PER_CALL, lambda chunk: client.create_image_tags(project_id, chunk))
    await add(
        "regions",
        regions,
        _REGIONS_PER_CALL,
        lambda chunk: client.create_image_regions(
            project_id, [ImageRegionCreateEntry(i, r.tag_id, r.left, r.top, r.width, r.height) for i, r in chunk]
        ),
    )
    return problems


def _epoch(text: str | None) -> float | None:
    if not text:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    if moment.tzinfo is None:
        return None  # without a zone the time cannot be compared safely
    return moment.timestamp()


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
