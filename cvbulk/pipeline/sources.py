"""Where upload's images come from: a small protocol, and the local folder that implements it.

A source lists its images (lazily, as ``ScanEntry``-like items with ``relpath``, ``size``, ``mtime_ns``, or
``ScanProblem``s for what could not be read), checks one image (``prepare``, synchronous: it runs in a worker
thread under the CPU limiter) and hands out the body a request reads when it is written. The journal keys
images by ``relpath``; ``state_key`` names the source in the state file's fingerprint (and its default path), so
one state file never serves two sources, and one place has one state file however its location is typed.

A new source (blob storage ...) implements :class:`ImageSource` and is passed as ``UploadOptions.source``.
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections import Counter
from collections.abc import AsyncIterator, Callable, Iterable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import anyio
import anyio.from_thread

from ..client._body import FileBody, ImageBody
from ._header import check_head
from .engine import Stop
from .errors import ConfigError, FatalRunError
from .labels import FolderLabels, LabelFileError, LabelSource, RegionLabel, YoloLabels, check_tag, open_label_source
from .prepare import ImageLimits, PreparedImage, Rejected, prepare_image
from .scan import IMAGE_EXTENSIONS, ScanProblem, SkipKind, _unsupported_reason, aiter_scan, count_candidates_within
from .send import ImageSender, Owners
from .status import Status

if TYPE_CHECKING:
    from ..storage import ImageSource as StorageSource
    from ..storage import ReadUrl, StorageEntry, StorageError

__all__ = [
    "ImageSource",
    "LocalFolder",
    "BlobFolder",
    "BlobItem",
    "SourcedImage",
    "StorageTrouble",
    "VirtualFolderLabels",
    "open_image_source",
    "is_container_location",
    "state_key",
    "storage_stop",
    "source_stop",
    "VIA_CHOICES",
]


class ImageSource(Protocol):
    @property
    def location(self) -> str:
        """What the source is, for the state file's fingerprint (an absolute path, a container URL without
        any secret)."""
        ...

    @property
    def state_key(self) -> str:
        """The source's one name for state files (default path, fingerprint): the same for every spelling of
        the same place (``az://c/p``, ``https://acct.blob.core.windows.net/c/p/?SAS``), never a secret."""
        ...

    def entries(self, *, include_hidden: bool = False) -> AsyncIterator[Any]:
        """Every image as an item with ``relpath`` (posix, the journal key), ``size`` and ``mtime_ns`` (any
        number that changes when the content does), or a ``ScanProblem``; deterministic order."""
        ...

    def prepare(self, entry: Any, limits: ImageLimits, regions: Iterable[RegionLabel]) -> PreparedImage | Rejected:
        """Check (and if need be fix) one image; blocking, called in a worker thread."""
        ...

    def body(self, entry: Any, size: int) -> ImageBody:
        """The image's own bytes (``size`` of them), read when its request is written, anew on a retry."""
        ...

    # Optional (looked up with getattr by cvbulk.pipeline.engine.count_first):
    # def count_within(self, seconds: float, *, include_hidden: bool = False) -> int | None
    #     How many items ``entries`` will yield, counted within ``seconds`` (blocking, run in a worker
    #     thread); None when it would take longer, or when the source cannot count cheaply.


class LocalFolder:
    """A folder on disk, walked by ``scan.aiter_scan``."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    @property
    def location(self) -> str:
        return str(self.root.resolve())

    @property
    def state_key(self) -> str:
        return self.location

    def entries(self, *, include_hidden: bool = False) -> AsyncIterator[Any]:
        return aiter_scan(self.root, include_hidden=include_hidden)

    def prepare(self, entry: Any, limits: ImageLimits, regions: Iterable[RegionLabel]) -> PreparedImage | Rejected:
        # header only: an image that passes through is read again when it is sent, never twice here
        return prepare_image(entry.path, limits=limits, regions=regions, header_only=True)

    def body(self, entry: Any, size: int) -> ImageBody:
        return FileBody(entry.path, size)

    def count_within(self, seconds: float, *, include_hidden: bool = False) -> int | None:
        """The number of values ``entries`` yields (images and scan problems), or None past ``seconds``."""
        return count_candidates_within(self.root, seconds, include_hidden=include_hidden)

    def open_labels(self, spec: str, root: Path) -> LabelSource:
        return open_label_source(spec, root)

    def make_sender(
        self, client: Any, project_id: str, *, started: float | None = None, owners: Owners | None = None
    ) -> ImageSender:
        return ImageSender(client, project_id, started=started, owners=owners)


# -- images in a blob container -------------------------------------------------------------------

def yolo_in_container(location: Any, upload_args: str = "") -> str:
    """Why YOLO labels are not read with a container ROOT, and the way that works: download, then upload the folder."""
    container, prefix = getattr(location, "container", "CONTAINER"), getattr(location, "prefix", "")
    pattern = f" --pattern '{prefix}*'" if prefix else ""
    return (
        "YOLO labels (a .txt file per image) are read from a folder on this machine, not from a container: "
        f"az storage blob download-batch -s {container}{pattern} -d FOLDER, then cvbulk upload FOLDER/{prefix} "
        f"{upload_args}--labels FOLDER/{prefix}data.yaml (or export with --format coco or regions-json, which a container run reads)"
    )


#: How images reach the service: by a read-only SAS URL the service fetches, as bytes, or URL with a
#: fallback to bytes for a blob the service reports it cannot fetch.
VIA_CHOICES = ("auto", "url", "bytes")
#: Lifetime of a read URL: long enough for a request that waits behind the rate limit, short enough
#: that a URL seen by accident soon opens nothing.
URL_TTL = 3600.0
#: The header check's first read. Format, size and mode sit in the first few KB of most images; one whose
#: header goes on (a camera JPEG's EXIF thumbnail) gets a second read of only what it lacks.
FIRST_HEAD_BYTES = 8 * 1024
#: Past a JPEG segment that did not fit: room for the small segments (tables, frame) before the scan.
_SEGMENT_ROOM = 4096


@dataclass(frozen=True, slots=True)
class BlobItem:
    """One blob, shaped like ``ScanEntry``: ``relpath`` is its name under the prefix (the journal key),
    ``mtime_ns`` a number made from its ETag, so a blob replaced between runs counts as changed."""

    entry: StorageEntry
    relpath: str
    size: int
    mtime_ns: int
    note: str | None = None

    @property
    def path(self) -> StorageEntry:  # what predict's work item carries to its prepare step
        return self.entry


@dataclass(frozen=True, slots=True, repr=False)
class SourcedImage(PreparedImage):
    """A checked image and how it goes: ``via`` "url" (``url`` holds a SAS token: never store or print it;
    ``data`` is empty) or "bytes" (``data`` as ``prepare_image`` made it)."""

    via: str = "bytes"
    url: str | None = field(default=None, compare=False)


def head_wanted(head: bytes, most: int) -> int | None:
    """How many first bytes the header check needs, judged from the ``head`` it had: None when they were all
    there (a JPEG whose segments reach its first scan), else a length to read up to (a JPEG: past the segment
    that did not fit, with room for the small ones after it; another format: ``most``)."""
    if head[:2] != b"\xff\xd8":
        return most
    pos, end = 2, len(head)
    while pos + 4 <= end:
        if head[pos] != 0xFF:
            return None  # not a marker where one belongs: more bytes would not help the check
        marker = head[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
        elif marker == 0xDA:  # start of scan: every header segment is in
            return None
        elif 0xD0 <= marker <= 0xD8 or marker == 0x01:  # markers without a length
            pos += 2
        else:
            pos += 2 + int.from_bytes(head[pos + 2 : pos + 4], "big")
    return pos + _SEGMENT_ROOM


def etag_number(etag: str) -> int:
    """A stable 62-bit number for an ETag (the journal keeps an integer where a file keeps its mtime)."""
    return int.from_bytes(hashlib.sha256(etag.encode()).digest()[:8], "big") >> 2


def _skip_reason(name: str, include_hidden: bool) -> ScanProblem | None:
    """The same rules as the folder scan, applied to a blob name."""
    parts = name.split("/")
    if not include_hidden and any(p.startswith(".") for p in parts):
        return ScanProblem(name, "hidden file, skipped (use --include-hidden)", SkipKind.HIDDEN)
    ext = os.path.splitext(parts[-1].rstrip(" ."))[1].lower()
    if ext not in IMAGE_EXTENSIONS:
        kind, reason = _unsupported_reason(ext, IMAGE_EXTENSIONS)
        return ScanProblem(name, reason, kind)
    return None


@dataclass(frozen=True, slots=True)
class StorageTrouble(Rejected):
    """Not sent because storage failed (no answer, a 5xx after the retries, access denied meanwhile), not because
    of the image: recorded with ``status`` "error", which a resume tries again (a rejected image it would not)."""

    status: Status = Status.ERROR


def _storage_rejected(exc: Exception) -> Rejected:
    from ..storage import ItemArchivedError, ItemChangedError, ItemMissingError, StorageError

    said = exc.reason if isinstance(exc, StorageError) else str(exc)  # the blob named, not the location (its row is)
    if isinstance(exc, ItemMissingError):
        return Rejected("vanished", said)
    if isinstance(exc, ItemArchivedError):  # final: a resume alone would try it again in vain
        return Rejected("archived", said)
    if isinstance(exc, ItemChangedError):
        return Rejected("changed", f"{said} (the next run sends its new content)")
    return StorageTrouble("unreadable", f"cannot read the blob: {said} (a resume tries it again)")


class BlobFolder:
    """The blobs under a container prefix (a ``cvbulk.storage`` source), as an :class:`ImageSource`.

    ``prepare`` reads at most the first 64 KB of a blob (one ranged GET); an image that passes goes as a
    read-only SAS URL unless ``via`` is "bytes"; one that needs a fix is downloaded, fixed and sent as data.
    ``counts`` says how many went which way (for the report), ``storage.stats`` what crossed the wire.
    """

    def __init__(
        self, storage: StorageSource, *, via: str = "auto", folders: Sequence[str] = (), ttl: float = URL_TTL
    ) -> None:
        if via not in VIA_CHOICES:
            raise ConfigError(f"{{opt:via}} must be one of {', '.join(VIA_CHOICES)}, not {via!r}")
        self.storage = storage
        self.via = via
        self.ttl = ttl
        self.folders = list(folders)
        self.counts: Counter[str] = Counter()
        self.listed = 0  # items ``entries`` handed out: what a stopped run did not reach is counted from it
        self._lock = threading.Lock()  # counts are bumped from worker threads
        # Items handed out as URLs, until their request is answered: the fallback needs the blob again.
        self._by_url_items: dict[str, BlobItem] = {}

    @property
    def location(self) -> str:
        return str(self.storage.location)

    @property
    def state_key(self) -> str:
        return self.storage.location.key  # (account, container, prefix): every spelling of the place

    async def entries(self, *, include_hidden: bool = False) -> AsyncIterator[Any]:
        """The blobs under the prefix, listed lazily; ends with the run-wide error of :meth:`stopped` at the next
        item once the account stopped answering (the items listed but not taken get no outcome: the report
        counts them)."""
        storage: Any = self.storage  # a BlobSource says ``down`` while the account does not answer
        watch = hasattr(storage, "down")
        async for page in storage.pages():
            for entry in page:
                if watch and storage.down is not None:
                    raise self.stopped() or storage.down
                self.listed += 1
                problem = _skip_reason(entry.name, include_hidden)
                if problem is not None:
                    yield problem
                else:
                    yield BlobItem(entry, entry.name, entry.size, etag_number(entry.etag))

    def stopped(self) -> StorageError | None:
        """The run-wide error to stop with while the account does not answer (None while it does): a read found it
        silent after its retries, and none has worked since."""
        from ..storage import StorageUnreachableError

        down = getattr(self.storage, "down", None)
        if down is None:
            return None
        where = self.storage.location.account_url or self.location
        return StorageUnreachableError(
            f"storage at {where} did not answer mid-run ({down.reason}); once it answers, run the same command "
            "again (nothing done is lost)"
        )

    def count_within(self, seconds: float) -> int | None:
        """How many items :meth:`entries` will yield (one per blob under the prefix), counted by listing names
        only, 5,000 a page, within ``seconds``: None past it (a very large prefix: then the total grows as the
        run's own listing goes). Blocking: the engine runs it in a worker thread while the job starts."""
        count = getattr(self.storage, "count", None)
        if count is None:
            return None

        async def within() -> int | None:
            with anyio.move_on_after(seconds):
                return int(await count())
            return None

        try:
            return anyio.from_thread.run(within)
        except Exception:  # no event loop to borrow (not in a worker thread), or the storage failed: no count
            return None

    def open_labels(self, spec: str, root: Path) -> LabelSource:
        """``folders``: the virtual folders (first name level) are the tags; any other spec is a label file
        on this machine whose paths are blob names under the prefix."""
        if spec == "folders":
            return VirtualFolderLabels(self.folders)
        source = open_label_source(spec, root)
        if isinstance(source, YoloLabels):  # its labels are files of their own, one per image, looked for on disk
            raise LabelFileError(yolo_in_container(self.storage.location))
        return source

    def _count(self, way: str) -> None:
        with self._lock:
            self.counts[way] += 1

    #: Preparers at once, each checking up to 64 blobs together (their reads pipelined): a few keep reads in flight
    #: while others judge headers.
    prepare_tasks = 4

    def prepare(self, item: Any, limits: ImageLimits, regions: Iterable[RegionLabel]) -> PreparedImage | Rejected:
        """Blocking (a worker thread): the protocol's form of :meth:`aprepare`."""
        return anyio.from_thread.run(self.aprepare, item, limits, tuple(regions))

    async def aprepare(
        self, item: Any, limits: ImageLimits, regions: Iterable[RegionLabel], cpu: anyio.CapacityLimiter | None = None
    ) -> PreparedImage | Rejected:
        """Check one blob (:meth:`aprepare_many` of one)."""
        return (await self.aprepare_many([item], limits, [tuple(regions)], cpu))[0]

    async def aprepare_many(
        self,
        items: Sequence[Any],
        limits: ImageLimits,
        regions: Sequence[Iterable[RegionLabel]],
        cpu: anyio.CapacityLimiter | None = None,
    ) -> list[PreparedImage | Rejected]:
        """Check several blobs, one result each: their reads await on the event loop, CPU work (a fix) runs in a
        worker thread under ``cpu``. By URL when a blob passes the header check (and ``via`` is not "bytes").

        The URLs are signed first: each header is read through its URL (a plain ranged GET, far cheaper than the
        SDK's), and the URL is what the service gets when the image passes. The first reads of all the blobs go
        together (pipelined on a few connections) and their headers are judged in one go; a blob whose header
        runs past the first bytes, or that needs a fix, goes on alone (all of those at once)."""
        from ..storage import StorageError

        each = [tuple(r) for r in regions]
        out: list[PreparedImage | Rejected | None] = [None] * len(items)
        later: list[tuple[int, Any, bytes | None]] = []  # (index, read URL, first bytes) of those that go on alone
        read_many = getattr(self.storage, "read_heads_at", None)
        if self.via == "bytes" or read_many is None:
            later = [(k, None, None) for k in range(len(items))]
        else:
            signed: list[Any] = []
            for k, item in enumerate(items):
                try:
                    signed.append(await self.storage.read_url(item.entry, ttl=self.ttl))
                except StorageError as exc:
                    out[k] = _storage_rejected(exc)
                    signed.append(None)
            todo = [k for k in range(len(items)) if out[k] is None]
            heads = await read_many([(items[k].entry, signed[k]) for k in todo], FIRST_HEAD_BYTES)
            for k, head in zip(todo, heads):
                if isinstance(head, StorageError):
                    out[k] = _storage_rejected(head)
                    continue
                verdict = check_head(head, items[k].size, limits, each[k])  # a header parse: cheap
                if verdict == "pass":
                    out[k] = self._by_url(items[k], signed[k], each[k])
                elif isinstance(verdict, Rejected):
                    out[k] = verdict
                else:
                    later.append((k, signed[k], head))
        if len(later) == 1:
            k, url, head = later[0]
            out[k] = await self._go_on(items[k], url, head, limits, each[k], cpu)
        elif later:

            async def go_on(k: int, url: Any, head: bytes | None) -> None:
                out[k] = await self._go_on(items[k], url, head, limits, each[k], cpu)

            async with anyio.create_task_group() as tg:
                for k, url, head in later:
                    tg.start_soon(go_on, k, url, head)
        return out  # type: ignore[return-value]  # every slot is filled

    def _by_url(self, item: BlobItem, signed: ReadUrl, regions: tuple[RegionLabel, ...]) -> SourcedImage:
        fmt = (os.path.splitext(item.relpath)[1].lstrip(".") or "jpg").upper()
        self._count("url")
        with self._lock:
            self._by_url_items[item.relpath] = item
        return SourcedImage(b"", 0, 0, "JPEG" if fmt in ("JPG", "JPEG") else fmt, f"etag:{item.entry.etag}",
                            (), regions, via="url", url=signed.url)

    async def _go_on(
        self,
        item: BlobItem,
        signed: ReadUrl | None,
        head: bytes | None,
        limits: ImageLimits,
        regions: tuple[RegionLabel, ...],
        cpu: anyio.CapacityLimiter | None,
    ) -> PreparedImage | Rejected:
        """A blob the first look did not settle: ``head`` (None: not read yet) grown until its header is whole
        (at most ``HEADER_BYTES``), then by URL if it passes, else downloaded and prepared (fixed) as data."""
        from ..storage import HEADER_BYTES, StorageError

        try:
            if signed is None or head is None:
                return await self._as_bytes(item, limits, regions, None, cpu)
            read_more = getattr(self.storage, "read_more_at", None)
            verdict = check_head(head, item.size, limits, regions)
            while read_more is not None and verdict == "fix" and len(head) < min(item.size, HEADER_BYTES):
                want = head_wanted(head, HEADER_BYTES)
                if want is None or want <= len(head):
                    break  # the whole header was there: the fix is real
                head = await read_more(item.entry, signed, head, min(want, HEADER_BYTES))
                verdict = check_head(head, item.size, limits, regions)
            if isinstance(verdict, Rejected):
                return verdict
            if verdict == "pass":
                return self._by_url(item, signed, regions)
            return await self._as_bytes(item, limits, regions, head, cpu)
        except StorageError as exc:
            return _storage_rejected(exc)

    async def _as_bytes(
        self,
        item: BlobItem,
        limits: ImageLimits,
        regions: tuple[RegionLabel, ...],
        head: bytes | None,
        cpu: anyio.CapacityLimiter | None,
    ) -> PreparedImage | Rejected:
        if item.size > limits.max_file_bytes:
            return check_head(b"x", item.size, limits, regions)  # type: ignore[return-value]  # the size refusal
        whole = head is not None and len(head) >= item.size
        data = head if whole and head is not None else await self.storage.read_all(item.entry)
        result = await anyio.to_thread.run_sync(
            partial(prepare_image, data=data, limits=limits, regions=regions), limiter=cpu
        )
        if isinstance(result, Rejected):
            return result
        self._count("bytes" if result.passed_through else "fixed")
        return SourcedImage(result.data, result.width, result.height, result.format, result.sha256,
                            result.fixes, result.regions, via="bytes")

    def body(self, entry: Any, size: int) -> ImageBody:
        return self.storage.body(entry.entry)  # a BlobBody: an ImageBody by shape

    def take_url_item(self, key: str) -> BlobItem | None:
        """The blob behind a URL sent for ``key``, forgotten from now on (its request has its answer)."""
        with self._lock:
            return self._by_url_items.pop(key, None)

    async def prepare_fallback(
        self, item: BlobItem, limits: ImageLimits, regions: Iterable[RegionLabel]
    ) -> PreparedImage | Rejected:
        """The bytes of a blob whose URL the service could not fetch, checked (and fixed) as from a folder."""
        from ..storage import StorageError

        try:
            result = await self._as_bytes(item, limits, tuple(regions), None, None)
        except StorageError as exc:
            return _storage_rejected(exc)
        with self._lock:
            self.counts["url"] -= 1
            self.counts["fallback"] += 1
        return result

    def make_sender(
        self, client: Any, project_id: str, *, started: float | None = None, owners: Owners | None = None
    ) -> ImageSender:
        from ._blob_send import FallbackSender

        return FallbackSender(client, project_id, self, started=started, owners=owners)

    def report(self) -> dict[str, Any]:
        """For the run's report: where the images came from, which way they went, what was read."""
        stats = self.storage.stats.snapshot()
        return {
            "location": self.location,
            "via": self.via,
            "sent": {
                "by_url": self.counts.get("url", 0),
                "as_bytes": self.counts.get("bytes", 0),
                "fixed_as_bytes": self.counts.get("fixed", 0),
                "url_fallback_to_bytes": self.counts.get("fallback", 0),
            },
            "storage": stats,
        }


class VirtualFolderLabels(FolderLabels):
    """``folders`` for a container: the first name level under the prefix is the tag. ``folders`` known up front
    are the tags announced before the run; without them (what ``open_image_source`` gives: a walk of the virtual
    folders is a second listing of a flat prefix) each tag is created when the run's listing first finds it."""

    def __init__(self, folders: Sequence[str] = ()) -> None:
        self.root = Path(".")
        self._map = {}
        self._cache = {}
        self._folders = list(folders)

    def tag_names(self) -> list[str]:
        return sorted({f for f in self._folders if not f.startswith(".") and check_tag(f) is None})


@asynccontextmanager
async def open_image_source(root: str | Path, *, via: str = "auto") -> AsyncIterator[ImageSource]:
    """A local folder (``LocalFolder``) or a container location (``az://``, ``https://`` ...: ``BlobFolder``)
    opened and checked. Storage trouble for the whole run becomes a ``ConfigError`` (a malformed location,
    missing credentials) or a ``FatalRunError`` (not found, access denied, no answer): one line, no secret."""
    text = str(root)
    if not is_container_location(text):
        yield LocalFolder(Path(text))
        return
    from ..storage import CredentialError, LocationError, StorageError, open_source

    if via not in VIA_CHOICES:
        raise ConfigError(f"{{opt:via}} must be one of {', '.join(VIA_CHOICES)}, not {via!r}")
    try:
        async with open_source(text) as storage:
            refused = getattr(storage, "urls_refused", None)  # a SAS token of the user's that can write
            if refused and via == "url":
                raise ConfigError(_braces(refused.replace("images go as bytes", "use --via auto or bytes")))
            if refused and via == "auto":
                via = "bytes"  # the CLI says why (``urls_refused``)
            # No walk of the virtual folders first: with ``folders`` labels a blob's first name level is its tag,
            # made when the one listing of the run first finds it (a flat prefix is listed once, not twice).
            yield BlobFolder(storage, via=via)
    except (LocationError, CredentialError) as exc:
        raise ConfigError(_braces(str(exc))) from None
    except StorageError as exc:
        raise FatalRunError(str(exc)) from None


def storage_stop(exc: BaseException) -> FatalRunError | None:
    """A run-wide storage error met mid-run (listing, a destination, the account that stopped answering) as the
    one line the run stops with, its report written first (``engine.Stop``); None for any other error."""
    from ..storage import CredentialError, LocationError, StorageError, StorageUnreachableError

    if not isinstance(exc, StorageError) or not exc.fatal or isinstance(exc, (LocationError, CredentialError)):
        return None
    text = str(exc)
    if isinstance(exc, StorageUnreachableError) and "run the same command again" not in text:
        text += "; once it answers, run the same command again (nothing done is lost)"
    return FatalRunError(_braces(text))


def source_stop(source: Any, *, also: Callable[[BaseException], FatalRunError | None] | None = None) -> Stop:
    """The :class:`~cvbulk.pipeline.engine.Stop` of a job reading ``source``: a storage error stops the run with
    its report, and so does an account found not answering when the stages end (``BlobFolder.stopped``);
    ``also``: the job's own errors that stop it the same way (the line to end with, None for the others)."""
    stopped = getattr(source, "stopped", None)

    def check() -> FatalRunError | None:
        error = stopped() if stopped is not None else None
        return storage_stop(error) if error is not None else None

    def when(exc: BaseException) -> FatalRunError | None:
        # (a body read from the container as it is sent, its account gone: the client's ``BodyReadError``,
        # which the senders raise on as the storage error it holds)
        own = also(exc) if also is not None else None
        return own if own is not None else storage_stop(exc)

    return Stop(when, check=check)


def state_key(source: Any) -> str:
    """The name of ``source`` in state files: its ``state_key``, or (a source of a library user's that predates it)
    its ``location``."""
    return str(getattr(source, "state_key", None) or source.location)


def is_container_location(text: str) -> bool:
    """True for ``az://...``, ``https://...`` and ``http://...`` (a container), False for a folder."""
    return text.lower().startswith(("az://", "https://", "http://"))


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")
