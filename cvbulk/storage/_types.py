"""The values and interfaces every storage backend shares: entries, read URLs, counters, timeouts."""

from __future__ import annotations

from collections.abc import AsyncIterable, AsyncIterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, runtime_checkable
from urllib.parse import urlsplit

from ._location import Location

__all__ = [
    "HEADER_BYTES",
    "StorageEntry",
    "ReadUrl",
    "StorageStats",
    "StorageTimeouts",
    "ImageSource",
    "ImageSink",
    "SourceBody",
    "EntryBody",
]

#: What the header check reads of an image at most (format, size and dimensions live in the first bytes).
HEADER_BYTES = 64 * 1024


@dataclass(frozen=True, slots=True)
class StorageEntry:
    """One blob or file. ``name`` is posix and relative to the location's prefix (``Hemlock/a.jpg``);
    ``etag`` changes whenever the content does (a local file: mtime and size), so ``(name, etag)`` keys it in a
    journal; ``tag`` is the first path level (the virtual folder), None for an entry directly under the prefix."""

    name: str
    size: int
    etag: str
    last_modified: datetime | None = None
    content_type: str | None = None

    @property
    def tag(self) -> str | None:
        head, sep, _ = self.name.partition("/")
        return head if sep else None

    @property
    def journal_key(self) -> tuple[str, str]:
        return (self.name, self.etag)


@dataclass(frozen=True, slots=True)
class ReadUrl:
    """A short-lived, read-only URL the service can fetch a blob with. ``url`` holds the SAS token: hand it to
    the service, never store or print it (``repr`` / ``str`` show the URL without its query)."""

    url: str = field(repr=False)
    expires_at: datetime

    def __repr__(self) -> str:
        return f"ReadUrl({self.public_url!r}, expires_at={self.expires_at.isoformat()})"

    __str__ = __repr__

    @property
    def public_url(self) -> str:
        """The URL without its query string: safe for logs and reports."""
        parts = urlsplit(self.url)
        return f"{parts.scheme}://{parts.netloc}{parts.path}"


@dataclass(slots=True)
class StorageStats:
    """Counters of one source or sink: what crossed the wire, for reports and benchmarks."""

    requests: int = 0
    listed: int = 0
    pages: int = 0
    bytes_read: int = 0
    header_reads: int = 0
    header_bytes: int = 0
    bytes_written: int = 0
    urls_signed: int = 0

    def snapshot(self) -> dict[str, int]:
        return {name: getattr(self, name) for name in self.__slots__}


@dataclass(frozen=True, slots=True)
class StorageTimeouts:
    """``connect``: TCP connect per request; ``read``: per socket read; ``probe``: the whole first request
    that proves the account answers (an account that does not answer is a fatal error after this long);
    ``retries``: attempts after the first for a transient failure (5xx, reset)."""

    connect: float = 5.0
    read: float = 30.0
    probe: float = 8.0
    retries: int = 3


@runtime_checkable
class SourceBody(Protocol):
    """The request body the client sends: the shape of ``cvbulk.client``'s ``ImageBody`` (duck-typed)."""

    size: int
    name: str

    def chunks(self) -> AsyncIterator[bytes]: ...


@runtime_checkable
class ImageSource(Protocol):
    """Where images are read from: a local folder or a blob container (under a prefix)."""

    location: Location
    stats: StorageStats
    supports_urls: bool

    async def check(self) -> None:
        """Raise the fatal error (not found, access denied, unreachable) before a run starts."""
        ...

    def pages(self, *, under: str = "", page_size: int = 1000) -> AsyncIterator[list[StorageEntry]]:
        """Every entry under the prefix (and under ``under``, relative to it), a page at a time, by name."""
        ...

    def entries(self, *, under: str = "", page_size: int = 1000) -> AsyncIterator[StorageEntry]: ...

    async def folders(self) -> list[str]:
        """The virtual folders directly under the prefix (tags of the folders label source), sorted."""
        ...

    async def stat(self, name: str) -> StorageEntry:
        """The entry of one name (a manifest row); :class:`ItemMissingError` if there is none."""
        ...

    async def read_head(self, entry: StorageEntry, size: int = HEADER_BYTES) -> bytes:
        """The first ``size`` bytes (fewer for a shorter item), if the item is unchanged since listed."""
        ...

    def stream(self, entry: StorageEntry) -> AsyncIterator[bytes]:
        """The whole content in chunks, if unchanged since listed."""
        ...

    async def read_all(self, entry: StorageEntry) -> bytes: ...

    def body(self, entry: StorageEntry) -> SourceBody:
        """A request body that reads the item anew on every attempt."""
        ...

    async def read_url(self, entry: StorageEntry, *, ttl: float = 3600.0) -> ReadUrl:
        """A read-only URL valid ``ttl`` seconds; :class:`ReadUrlError` where there can be none."""
        ...

    async def aclose(self) -> None: ...


@dataclass(slots=True)
class EntryBody:
    """A request body read from one entry of a source: ``chunks()`` opens a new read each time it is called
    (one per attempt), checked against the listed entry, so a retry never sends half of an item that changed."""

    source: ImageSource
    entry: StorageEntry
    size: int = field(init=False)
    name: str = field(init=False)

    def __post_init__(self) -> None:
        self.size = self.entry.size
        self.name = self.entry.name

    def chunks(self) -> AsyncIterator[bytes]:
        return self.source.stream(self.entry)


@runtime_checkable
class ImageSink(Protocol):
    """Where an export writes: a local folder or a blob container (under a prefix). Writes replace."""

    location: Location
    stats: StorageStats

    async def check(self) -> None: ...

    async def write_bytes(self, name: str, data: bytes, *, content_type: str | None = None) -> None:
        """Write ``name`` whole or not at all (a reader never sees half of it); replaces what was there."""
        ...

    async def write_stream(
        self, name: str, chunks: AsyncIterable[bytes], *, content_type: str | None = None
    ) -> None: ...

    async def write_text(self, name: str, text: str, *, content_type: str | None = None) -> None: ...

    def pages(self, *, under: str = "", page_size: int = 1000) -> AsyncIterator[list[StorageEntry]]:
        """What exists already (for resume), a page at a time."""
        ...

    async def exists(self, name: str) -> bool: ...

    async def aclose(self) -> None: ...
