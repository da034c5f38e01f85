"""The one create-images sender (upload and migrate): one request per batch, one outcome per image.

The rules:
- ``OK`` -> uploaded. ``OKDuplicate`` -> uploaded when our own earlier attempt put the image there (the
  journal said ``sending`` for THAT file, or this run created it for this very file: a retried request whose
  first answer was lost), else duplicate (of the file that owns it, when known). An image id has one owner:
  the journal's (``owners=``), else the first file of this run to claim it. A claim made without an ``OK``
  (from ``sending`` or the creation time) that a later ``OK`` for another file proves wrong is undone:
  :meth:`ImageSender.take_reclassified` hands it to the caller to record as a duplicate.
  Any other per-image status of a 207 -> failed, with the status as the reason.
- A duplicate keeps the labels it was first given: the tags and regions it lacks are added (CreateImageTags,
  CreateImageRegions); so are tags past the 20 a request may carry per image. Regions match within
  ``REGION_TOLERANCE`` (the service rounds coordinates), tag ids without regard to case.
- A request refused as too big (the batch-size codes, 413) or for one bad image (an image code) is split in
  halves, down to single images, so one bad image never takes 63 good ones with it. Any other 400 is about
  the request, not its images: every image gets ``error`` with the service's words (no cascade of halves).
- Transient trouble the client already retried -> error (retried on resume). A wrong key or a project gone
  -> :class:`FatalSendError`, carrying the batch's outcomes so they are recorded before the run stops.
"""

from __future__ import annotations

import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..client._body import ImageBody
from ..client._errors import AuthenticationError, BadRequestError, BodyReadError, CustomVisionError, NotFoundError
from ._reasons import one_line
from ._shared import parse_timestamp
from .batch import MAX_TAGS_PER_BATCH, Batch, BatchItem, TaggedRegion
from .engine import FatalBatchError
from .status import Outcome, Status

if TYPE_CHECKING:
    from ..client import Image, ImageCreateResult, ImageCreateSummary, TrainingClient

__all__ = [
    "ImageSender",
    "FatalSendError",
    "STATUS_REASONS",
    "REGION_TOLERANCE",
    "add_labels",
    "SendOutcome",
    "Owners",
    "Reclassified",
    "duplicate_reason",
]

SendOutcome = Outcome[BatchItem]
#: image ids -> the key of the file the journal records as having uploaded each (unknown ids absent)
Owners = Callable[[Sequence[str]], Awaitable[Mapping[str, str]]]

# Codes that mean "too big a request": the halves will go through.
SPLIT_CODES = frozenset({"BadRequestExceededBatchSize", "BadRequestImageBatch", "BadRequestImageExceededCount"})
# Codes that one image of the request can cause: halving the request finds it.
IMAGE_CODES = frozenset(
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
#: Two regions are the same when every coordinate (normalised 0..1) is within this of the other's.
REGION_TOLERANCE = 1e-3
_CLOCK_SKEW = 5.0  # seconds of disagreement allowed between our clock and the service's
# Image ids of recent uploads kept to tell twins from our own retries. They must cover the images of the
# requests in flight (64 x 64; the journal answers for older ones); more only holds memory
# that grows with the run (20,000 kept took ~9 MB of a 100,000-file upload's 67 MB).
_RECENT = 4_096
_TAGS_PER_CALL = 128  # CreateImageTags: "Limited to 128 tags per batch."
_REGIONS_PER_CALL = 64  # CreateImageRegions: "a limit of 64 entries in the batch."
_INDEX = re.compile(r"^(\d+)-")

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
class Reclassified:
    """An ``uploaded`` outcome already handed out that was not ours after all: ``key``'s image ``image_id``
    was created by ``owner``'s request (its ``OK`` came later). The caller records ``key`` as a duplicate."""

    key: str
    image_id: str
    owner: str

    @property
    def reason(self) -> str:
        return duplicate_reason(self.owner)


def duplicate_reason(owner: str | None) -> str:
    """The one-line reason of a duplicate, naming the file that brought the image when it is known."""
    if owner:
        return f"the same image is already in the project (uploaded from {owner})"
    return "the same image is already in the project"


class FatalSendError(FatalBatchError):
    """The run cannot go on (bad key, project gone); ``outcomes`` are the batch's, to be recorded first."""


def _wire_name(index: int, item: BatchItem) -> str:
    # Unique within the request, so each answer finds its image even when two folders hold "1.jpg".
    return f"{index:02d}-{item.name}"


def _index_of(result: ImageCreateResult) -> int | None:
    name = (getattr(result, "source_url", None) or "").strip().strip('"').strip().rsplit("/", 1)[-1]
    m = _INDEX.match(name)
    return int(m.group(1)) if m else None


class ImageSender:
    """Sends create-images batches to one project; one instance is shared by every sender task."""

    def __init__(
        self,
        client: TrainingClient,
        project_id: str,
        *,
        started: float | None = None,
        by_time: bool = True,
        owners: Owners | None = None,
    ) -> None:
        """``started``: when the run began (epoch s; default now). With ``by_time``, an ``OKDuplicate`` image
        created since then, for this very file, is taken as ours (a retried request whose first answer was
        lost); without, only what the journal left ``sending`` is (migrate: the target may be someone's).
        ``owners``: asks the journal which file already owns an image id (a resumed run's twins)."""
        self.client = client
        self.project_id = project_id
        self._owners = owners
        # image id -> key, for claims made without an OK (journal intent, creation time): a later OK for
        # another file proves them wrong. Bounded like _recent.
        self._provisional: OrderedDict[str, str] = OrderedDict()
        self._reclassified: list[Reclassified] = []
        self.splits = 0  # requests split because the service refused their size
        # When this run began (epoch s), less a margin for the service's clock. None: an image's creation
        # time is not taken as a sign of ownership (migrate: the target may hold images made just before).
        self._since = (started if started is not None else time.time()) - _CLOCK_SKEW if by_time else None
        # image id -> key of the files this run uploaded lately (bounded: memory stays flat)
        self._recent: OrderedDict[str, str] = OrderedDict()

    async def send(self, batch: Batch, *, prior: Mapping[str, str | None] | None = None) -> list[SendOutcome]:
        """Send ``batch``; one outcome per item, in the batch's order.

        ``prior`` maps a key to the status the journal had before this run (``sending`` turns an
        ``OKDuplicate`` into ``uploaded``). Raises :class:`FatalSendError` for a fatal error.
        """
        prior = prior or {}
        try:
            summary = await self._create(batch)
        except BadRequestError as exc:
            too_big = exc.code in SPLIT_CODES or exc.status == 413
            if too_big or exc.code in IMAGE_CODES or exc.code is None:
                if len(batch) > 1:
                    self.splits += too_big
                    left, right = batch.split()
                    return await self.send(left, prior=prior) + await self.send(right, prior=prior)
                return [Outcome(batch.items[0], Status.FAILED, reason=one_line(exc))]
            # About the request, not its images (an unknown tag id, ...): halving would only repeat it
            # 127 times. Kept as error with the service's words, retried on resume.
            return [Outcome(i, Status.ERROR, reason=one_line(exc)) for i in batch.items]
        except (AuthenticationError, NotFoundError) as exc:
            raise FatalSendError(exc, [Outcome(i, Status.ERROR, reason=one_line(exc)) for i in batch.items]) from exc
        except BodyReadError as exc:
            if exc.source_gone:  # a storage account that stopped answering: the caller stops the run
                raise exc.error from None
            # A body could not be read as it was sent (a file changed or vanished since it was checked, a blob
            # replaced): the request did not complete; error, retried on resume (the change asks for a check).
            return [Outcome(i, Status.ERROR, reason=exc.message) for i in batch.items]
        except CustomVisionError as exc:
            # Retryable trouble the client has already retried as far as its budget allowed.
            return [Outcome(i, Status.ERROR, reason=one_line(exc)) for i in batch.items]
        except OSError as exc:  # the same, from a client that raises the body's error as it is
            return [Outcome(i, Status.ERROR, reason=f"reading the image: {one_line(exc)}") for i in batch.items]
        owned = await self._owned(summary.images)
        answered = self._outcomes(batch, summary.images, prior, owned)
        return await self._complete_labels(answered)

    def take_reclassified(self) -> list[Reclassified]:
        """The ``uploaded`` outcomes given out earlier that a later answer showed to be duplicates (once)."""
        moved, self._reclassified = self._reclassified, []
        return moved

    async def _owned(self, results: Sequence[ImageCreateResult]) -> Mapping[str, str]:
        """The journal's owner of each image answered ``OKDuplicate`` (one query, only when there are any)."""
        if self._owners is None:
            return {}
        ids = [r.image.id for r in results if r.status == "OKDuplicate" and r.image is not None and r.image.id]
        return await self._owners(ids) if ids else {}

    async def _create(self, batch: Batch) -> ImageCreateSummary:
        from ..client import ImageFileCreateEntry, ImageUrlCreateEntry, Region

        metadata = dict(batch.metadata) or None
        if batch.kind == "data":
            return await self.client.create_images_from_data(
                self.project_id, [(_wire_name(i, it), _body(it)) for i, it in enumerate(batch.items)],
                tag_ids=batch.tag_ids,
            )
        if batch.kind == "urls":
            urls = [
                ImageUrlCreateEntry(
                    url=it.url or "",
                    tag_ids=tuple(it.tag_ids[:MAX_TAGS_PER_BATCH]),
                    regions=tuple(Region(r.tag_id, r.left, r.top, r.width, r.height) for r in it.regions),
                )
                for it in batch.items
            ]
            return await self.client.create_images_from_urls(self.project_id, urls, metadata=metadata)
        files = [
            ImageFileCreateEntry(
                name=_wire_name(i, it),
                contents=_body(it),  # type: ignore[arg-type]  # an ImageBody: streamed
                tag_ids=tuple(it.tag_ids[:MAX_TAGS_PER_BATCH]),
                regions=tuple(Region(r.tag_id, r.left, r.top, r.width, r.height) for r in it.regions),
            )
            for i, it in enumerate(batch.items)
        ]
        return await self.client.create_images_from_files(self.project_id, files, metadata=metadata)

    def _match(self, batch: Batch, results: Sequence[ImageCreateResult]) -> dict[int, ImageCreateResult]:
        """Each answer to its image: by the index in its name (or its URL), else by position."""
        by_index: dict[int, ImageCreateResult] = {}
        urls = {it.url: k for k, it in enumerate(batch.items)} if batch.kind == "urls" else {}
        for r in results:
            if batch.kind == "urls":
                k: int | None = urls.get((r.source_url or "").strip().strip('"'))
            else:
                k = _index_of(r)
            if k is not None and 0 <= k < len(batch) and k not in by_index:
                by_index[k] = r
        if len(by_index) < len(batch) and len(results) == len(batch):
            by_index = dict(enumerate(results))  # names not echoed back: the answer is in request order
        return by_index

    def _outcomes(
        self,
        batch: Batch,
        results: Sequence[ImageCreateResult],
        prior: Mapping[str, str | None],
        owned: Mapping[str, str] | None = None,
    ) -> list[tuple[SendOutcome, ImageCreateResult | None]]:
        owned = owned or {}
        by_index = self._match(batch, results)
        out: list[tuple[SendOutcome, ImageCreateResult | None]] = []
        for i, item in enumerate(batch.items):
            r = by_index.get(i)
            if r is None:
                out.append((Outcome(item, Status.ERROR, reason="the service's answer did not mention this image"), None))
                continue
            image_id = r.image.id if r.image is not None else None
            status = r.status or "ErrorUnknown"
            if status == "OK":
                self._created(image_id, item.key)
                out.append((Outcome(item, Status.UPLOADED, image_id, nbytes=item.nbytes), r))
            elif status == "OKDuplicate":
                mine = self._ours(item.key, r.image, prior.get(item.key), owned.get(image_id or ""))
                reason = None if mine else duplicate_reason(self._recent.get(image_id or ""))
                status_ = Status.UPLOADED if mine else Status.DUPLICATE
                out.append((Outcome(item, status_, image_id, reason, nbytes=item.nbytes), r))
            else:
                hint = STATUS_REASONS.get(status)
                out.append((Outcome(item, Status.FAILED, image_id, f"{status}: {hint}" if hint else status), r))
        return out

    def _ours(self, key: str, image: Image | None, prior_status: str | None, owner: str | None = None) -> bool:
        """Did our own earlier attempt put this ``OKDuplicate`` image there?

        An image has one owner. Another file of this run that already holds it, or the file the journal
        records as having uploaded it (``owner``), makes it a duplicate. Otherwise it is ours when a killed
        run left THIS file ``sending`` (its request may have gone through), or when the image was created
        during this run (the client retried a request whose first attempt had gone through). Otherwise the
        content was already in the project: a duplicate.
        """
        image_id = getattr(image, "id", None)
        if image_id is None:
            return prior_status == Status.SENDING
        other = self._recent.get(image_id)
        if other is not None:
            return other == key
        if owner is not None:
            self._remember(image_id, owner)
            return owner == key
        if prior_status == Status.SENDING:
            self._claim(image_id, key)
            return True
        created = parse_timestamp(getattr(image, "created", None)) if self._since is not None else None
        if created is not None and self._since is not None and created >= self._since:
            self._claim(image_id, key)
            return True
        return False

    def _created(self, image_id: str | None, key: str) -> None:
        """An ``OK``: this file's request created the image. A claim another file made on it without an
        ``OK`` was wrong (its answer came first): that file is a duplicate."""
        if image_id:
            claimed = self._provisional.pop(image_id, None)
            if claimed is not None and claimed != key and self._recent.get(image_id) == claimed:
                self._reclassified.append(Reclassified(claimed, image_id, key))
                del self._reclassified[:-_RECENT]
        self._remember(image_id, key)

    def _claim(self, image_id: str, key: str) -> None:
        self._remember(image_id, key)
        self._provisional[image_id] = key
        while len(self._provisional) > _RECENT:
            self._provisional.popitem(last=False)

    def _remember(self, image_id: str | None, key: str) -> None:
        if not image_id:
            return
        self._recent[image_id] = key
        self._recent.move_to_end(image_id)
        while len(self._recent) > _RECENT:
            self._recent.popitem(last=False)

    async def _complete_labels(self, answered: list[tuple[SendOutcome, ImageCreateResult | None]]) -> list[SendOutcome]:
        """Add the tags and regions an image lacks: a duplicate keeps the labels it was first given, and
        a request carries at most 20 tags per image."""
        tag_pairs: list[tuple[str, str]] = []
        regions: list[tuple[str, TaggedRegion]] = []
        for o, r in answered:
            if o.status not in (Status.UPLOADED, Status.DUPLICATE) or not o.image_id or r is None:
                continue
            item, image = o.item, r.image
            region_tags = {g.tag_id.lower() for g in item.regions}
            if r.status == "OKDuplicate" or image is None:
                have = {str(t.tag_id).lower() for t in ((image.tags if image else None) or ())}
                existing = [
                    TaggedRegion(str(g.tag_id), float(g.left), float(g.top), float(g.width), float(g.height))
                    for g in ((image.regions if image else None) or ())
                ]
                regions += [(o.image_id, g) for g in item.regions if not any(same_region(g, e) for e in existing)]
                have |= region_tags  # a region's tag becomes the image's tag with the region
            else:
                # A fresh image holds what the request carried: only tags past 20 can be missing.
                have = {t.lower() for t in item.tag_ids[:MAX_TAGS_PER_BATCH]} | region_tags
            tag_pairs += [(o.image_id, t) for t in dict.fromkeys(item.tag_ids) if t.lower() not in have]
        outcomes = [o for o, _ in answered]
        if not tag_pairs and not regions:
            return outcomes
        problems = await add_labels(self.client, self.project_id, tag_pairs, regions)
        return [
            Outcome(o.item, Status.ERROR, o.image_id, problems[o.image_id], o.nbytes, o.detail)
            if o.image_id in problems and o.status in (Status.UPLOADED, Status.DUPLICATE)
            else o
            for o in outcomes
        ]


def _body(item: BatchItem) -> ImageBody:
    if item.body is None:
        raise ValueError(f"{item.key}: a data or files request needs the image's bytes, not only a URL")
    return item.body


def same_region(a: TaggedRegion, b: TaggedRegion) -> bool:
    """One box, however the service rounded it: the same tag (any case), coordinates within the tolerance."""
    return a.tag_id.lower() == b.tag_id.lower() and all(
        abs(float(x) - float(y)) <= REGION_TOLERANCE for x, y in zip(a[1:], b[1:])
    )


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


def _chunks(items: list, size: int) -> Iterable[list]:
    for start in range(0, len(items), size):
        yield items[start : start + size]
