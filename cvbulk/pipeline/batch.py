"""Grouping prepared images into create-images requests.

Two request shapes exist (spec, section 6):
- ``CreateImagesFromData`` (multipart, raw bytes): the tags go in the query string and apply to every
  image of the request, so its batches hold images that share one tag set and carry no regions.
- ``CreateImagesFromFiles`` (JSON, base64): every image carries its own tags and regions; used for
  images with regions, and for images whose tag sets are too many to give each its own open batch.

Every batch stays under the service's limits: 64 images, 20 distinct tags, and a byte budget (the real
service times out on requests much over ~50 MB). ``Batcher`` is the pure grouping logic;
``batch_stream`` drives it between two memory streams and flushes a partial batch after a short linger,
so a slow scan never stalls the senders.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, NamedTuple

import anyio
from anyio.abc import ObjectReceiveStream, ObjectSendStream

from ..client._body import BytesBody, ImageBody
from .engine import put, take_ready

__all__ = [
    "MAX_IMAGES_PER_BATCH",
    "MAX_TAGS_PER_BATCH",
    "DEFAULT_BATCH_BYTES",
    "DEFAULT_LINGER",
    "BatchKind",
    "TaggedRegion",
    "BatchItem",
    "Batch",
    "Batcher",
    "batch_stream",
    "wire_size",
]

MAX_IMAGES_PER_BATCH = 64
MAX_TAGS_PER_BATCH = 20
# Well under the ~50 MB at which the real service times out a create request.
DEFAULT_BATCH_BYTES = 32 * 1024 * 1024
# How long a partial batch may wait for company before it goes anyway (seconds).
DEFAULT_LINGER = 0.25

#: data: multipart, one shared tag set; files: JSON with per-image tags and regions; urls: the service fetches.
BatchKind = Literal["data", "files", "urls"]


class TaggedRegion(NamedTuple):
    """A region with its tag already resolved to an id (normalised 0..1 coordinates)."""

    tag_id: str
    left: float
    top: float
    width: float
    height: float


@dataclass(frozen=True, eq=False)
class BatchItem:
    """One image on its way to the service.

    ``key`` identifies it in the journal; ``name`` is the file name sent to the service (unique within
    a batch is the sender's business); ``body`` its bytes, read when the request is written (bytes are
    wrapped in a ``BytesBody``), or None when the service fetches ``url``; ``context`` is the caller's own
    bookkeeping, carried untouched.
    """

    key: str
    name: str
    body: ImageBody | None
    tag_ids: tuple[str, ...] = ()
    regions: tuple[TaggedRegion, ...] = ()
    context: Any = None
    url: str | None = None
    metadata: tuple[tuple[str, str], ...] = ()  # the image's metadata: it goes in a request of its own map

    def __post_init__(self) -> None:
        if isinstance(self.body, (bytes, bytearray, memoryview)):
            object.__setattr__(self, "body", BytesBody(bytes(self.body), self.name))

    @property
    def nbytes(self) -> int:
        return self.body.size if self.body is not None else 0

    @property
    def needs_files_request(self) -> bool:
        return bool(self.regions) or len(self.tag_ids) > MAX_TAGS_PER_BATCH


def wire_size(item: BatchItem, kind: BatchKind) -> int:
    """Bytes the image adds to a request body: raw in multipart, base64 in JSON."""
    if kind == "files":
        return 4 * math.ceil(item.nbytes / 3)
    return item.nbytes


@dataclass(frozen=True, eq=False)
class Batch:
    """One create-images request. ``tag_ids`` is the shared tag set of a ``data`` batch (empty for
    ``files`` batches, whose items carry their own)."""

    kind: BatchKind
    items: tuple[BatchItem, ...]
    tag_ids: tuple[str, ...] = ()
    metadata: tuple[tuple[str, str], ...] = ()  # one map per request (files and urls batches)

    @property
    def nbytes(self) -> int:
        return sum(wire_size(item, self.kind) for item in self.items)

    @property
    def keys(self) -> list[str]:
        return [item.key for item in self.items]

    def __len__(self) -> int:
        return len(self.items)

    def split(self) -> tuple[Batch, Batch]:
        """Two halves, for a request the service refused as too large."""
        if len(self.items) < 2:
            raise ValueError("a batch of one image cannot be split")
        middle = len(self.items) // 2
        return (
            Batch(self.kind, self.items[:middle], self.tag_ids, self.metadata),
            Batch(self.kind, self.items[middle:], self.tag_ids, self.metadata),
        )


@dataclass(eq=False)
class _Group:
    kind: BatchKind
    tag_ids: tuple[str, ...]
    opened_at: float
    items: list[BatchItem] = field(default_factory=list)
    nbytes: int = 0
    tags: set[str] = field(default_factory=set)
    metadata: tuple[tuple[str, str], ...] = ()

    def fits(self, item: BatchItem, *, max_images: int, max_tags: int, max_bytes: int) -> bool:
        if not self.items:
            return True  # an empty group takes anything: an oversized image goes alone
        if len(self.items) >= max_images:
            return False
        if self.nbytes + wire_size(item, self.kind) > max_bytes:
            return False
        return not (self.kind != "data" and len(self.tags | _item_tags(item)) > max_tags)

    def add(self, item: BatchItem) -> None:
        self.items.append(item)
        self.nbytes += wire_size(item, self.kind)
        if self.kind != "data":
            self.tags |= _item_tags(item)

    def to_batch(self) -> Batch:
        return Batch(self.kind, tuple(self.items), self.tag_ids, self.metadata)


def _item_tags(item: BatchItem) -> set[str]:
    return set(item.tag_ids[:MAX_TAGS_PER_BATCH]) | {r.tag_id for r in item.regions}


# (kind, the shared tag set of a data group, the metadata map every image of the request gets)
_GroupKey = tuple[BatchKind, tuple[str, ...], tuple[tuple[str, str], ...]]
_FILES_KEY: _GroupKey = ("files", (), ())


class Batcher:
    """Groups items into batches; pure and synchronous (``batch_stream`` adds the time).

    Images sharing a tag set (and without regions) go to a ``data`` group of that set, up to
    ``max_open_groups`` sets at once; images with regions, with more tags than a request allows, or
    whose tag set finds no open group go to the one ``files`` group. An image with metadata goes to a
    ``files`` (or ``urls``) group of its metadata map: a request carries one map for all its images, and
    CreateImagesFromData none; at most ``max_open_groups`` such maps are open at once (past it, the fullest
    goes early). ``max_open_bytes`` bounds the memory held by open groups: past it, the largest group is
    sent early.
    """

    def __init__(
        self,
        *,
        max_images: int = MAX_IMAGES_PER_BATCH,
        max_tags: int = MAX_TAGS_PER_BATCH,
        max_bytes: int = DEFAULT_BATCH_BYTES,
        max_open_groups: int = 8,
        max_open_bytes: int | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 1 <= max_images <= MAX_IMAGES_PER_BATCH:
            raise ValueError(f"max_images must be 1..{MAX_IMAGES_PER_BATCH}")
        if not 1 <= max_tags <= MAX_TAGS_PER_BATCH:
            raise ValueError(f"max_tags must be 1..{MAX_TAGS_PER_BATCH}")
        if max_bytes < 1:
            raise ValueError("max_bytes must be positive")
        self.max_images = max_images
        self.max_tags = max_tags
        self.max_bytes = max_bytes
        self.max_open_groups = max(1, max_open_groups)
        self.max_open_bytes = max_open_bytes if max_open_bytes is not None else 2 * max_bytes
        self._clock = clock
        self._groups: dict[_GroupKey, _Group] = {}  # insertion order == age order
        self._open_bytes = 0
        self._last_add = clock()

    @property
    def pending(self) -> int:
        """Images held in open (not yet emitted) groups."""
        return sum(len(g.items) for g in self._groups.values())

    @property
    def oldest_opened_at(self) -> float | None:
        return min((g.opened_at for g in self._groups.values()), default=None)

    def add(self, item: BatchItem) -> list[Batch]:
        """Place one item; return the batches that are complete as a result (often none)."""
        out: list[Batch] = []
        self._last_add = self._clock()
        key = self._route(item)
        group = self._groups.get(key)
        if group is not None and not group.fits(
            item, max_images=self.max_images, max_tags=self.max_tags, max_bytes=self.max_bytes
        ):
            out.append(self._emit(key))
            group = None
        if group is None:
            group = _Group(key[0], key[1], self._clock(), metadata=key[2])
            self._groups[key] = group
            with_metadata = [k for k in self._groups if k[2] and k != key]
            if len(with_metadata) >= self.max_open_groups:  # many maps: do not hold them all open
                out.append(self._emit(max(with_metadata, key=lambda k: len(self._groups[k].items))))
        group.add(item)
        self._open_bytes += wire_size(item, group.kind)
        # A request that cannot take one more image goes now rather than at the next add.
        if len(group.items) >= self.max_images or group.nbytes >= self.max_bytes:
            out.append(self._emit(key))
        while self._open_bytes > self.max_open_bytes and self._groups:
            largest = max(self._groups, key=lambda k: self._groups[k].nbytes)
            out.append(self._emit(largest))
        if item.tag_ids and len(item.tag_ids) > self.max_tags and key in self._groups:
            # An image with more tags than a request allows travels alone (the rest are added after).
            out.append(self._emit(key))
        return out

    def flush(self) -> list[Batch]:
        """Every open group, oldest first (the end of the stream)."""
        return [self._emit(key) for key in list(self._groups)]

    def flush_lingering(self, linger: float, max_age: float | None = None) -> list[Batch]:
        """Partial groups that should not wait any longer.

        All of them when no image has arrived for ``linger`` seconds (the upstream is slow: waiting
        stalls the senders); while images keep coming, only groups older than ``max_age`` (a rare
        tag set must not wait for ever). A partial request costs as much of the rate limit as a
        full one, so a busy upstream gets full batches.
        """
        now = self._clock()
        if now - self._last_add >= linger:
            return self.flush()
        max_age = max_age if max_age is not None else max(2.0, 8 * linger)
        return [self._emit(k) for k, g in list(self._groups.items()) if now - g.opened_at >= max_age]

    def _route(self, item: BatchItem) -> _GroupKey:
        if item.url is not None:
            return ("urls", (), item.metadata)
        if item.metadata:
            return ("files", (), item.metadata)
        if item.regions or len(item.tag_ids) > self.max_tags:
            return _FILES_KEY
        key: _GroupKey = ("data", tuple(sorted(set(item.tag_ids))), ())
        if key in self._groups:
            return key
        open_data = sum(1 for k in self._groups if k[0] == "data")
        if open_data < self.max_open_groups:
            return key
        # Many distinct tag sets: per-image tags in a files request beat many half-empty requests.
        return _FILES_KEY

    def _emit(self, key: _GroupKey) -> Batch:
        group = self._groups.pop(key)
        self._open_bytes -= group.nbytes
        return group.to_batch()


_TICK = object()


async def _ticker(send: ObjectSendStream[Any], period: float) -> None:
    """Nudges the batch loop so that lingering groups go out; ends with the upstream."""
    async with send:
        # Our own clone is the last one open once the upstream has finished.
        while send.statistics().open_send_streams > 1:  # type: ignore[attr-defined]
            await anyio.sleep(period)
            try:
                send.send_nowait(_TICK)  # type: ignore[attr-defined]  # a memory stream's
            except anyio.WouldBlock:
                pass  # items are flowing: no nudge needed
            except (anyio.BrokenResourceError, anyio.ClosedResourceError):
                return


async def batch_stream(
    receive: ObjectReceiveStream[BatchItem],
    send: ObjectSendStream[Batch],
    batcher: Batcher,
    *,
    linger: float = DEFAULT_LINGER,
    ticker_send: ObjectSendStream[Any] | None = None,
    on_batch: Callable[[Batch], None] | None = None,
) -> None:
    """Read items until the stream ends, send batches as they fill, flush what lingers.

    ``ticker_send`` is a clone of the send side of ``receive``'s stream: when given, a ticker feeds
    the loop a nudge every ``linger / 2`` seconds so partial groups older than ``linger`` go out even
    while the upstream is quiet. (A timeout around ``receive`` could lose an item delivered just as
    it fires; a nudge through the same stream cannot.)
    """

    async def emit(batches: Sequence[Batch]) -> None:
        for b in batches:
            if on_batch is not None:
                on_batch(b)
            await put(send, b)

    async with send, anyio.create_task_group() as tg:
        if ticker_send is not None:
            tg.start_soon(_ticker, ticker_send, max(linger / 2, 0.01))
        async with receive:
            async for first in receive:
                for item in take_ready(first, receive, 256):  # one trip round the event loop for all that wait
                    if item is _TICK:
                        await emit(batcher.flush_lingering(linger))
                        continue
                    await emit(batcher.add(item))
        await emit(batcher.flush())
